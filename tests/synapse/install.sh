#!/usr/bin/env bash
# Install a real Synapse homeserver for the e2e tests (tests/e2e/lib/synapse.js)
# into build/synapse-venv. Cached: does nothing when Synapse already imports.
#
#   tests/synapse/install.sh            # matrix-synapse==1.163.* (else the newest)
#   SYNAPSE_VERSION='1.162.*' tests/synapse/install.sh
#   PYTHON=python3.12 tests/synapse/install.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${SYNAPSE_VENV:-$ROOT/build/synapse-venv}"
PYTHON="${PYTHON:-python3}"
WANT="${SYNAPSE_VERSION:-1.163.*}"

version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("matrix-synapse"))'
}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import synapse' 2>/dev/null; then
  echo "synapse: cached in $VENV (matrix-synapse $(version))"
  exit 0
fi

start=$(date +%s)
# Debian's python3 has no venv/ensurepip without the python3-venv package.
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "synapse: installing python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
  else
    echo "synapse: $PYTHON cannot create a venv (install python3-venv)" >&2
    exit 1
  fi
fi
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "matrix-synapse==$WANT"; then
  echo "synapse: matrix-synapse==$WANT not installable, falling back to the newest release" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check matrix-synapse
fi
"$VENV/bin/python" -c 'import synapse'
echo "synapse: installed matrix-synapse $(version) in $VENV ($(( $(date +%s) - start )) s)"
