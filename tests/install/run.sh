#!/usr/bin/env bash
# `make test-install`: the Debian package on this machine, as an admin uses it.
#   1. make deb, dpkg -i (needs root; prosody and lua5.4 already installed)
#   2. every shipped example config on the SYSTEM Prosody, adapted to
#      loopback, against the installed files only (tests/install/smoke.mjs)
#   3. upgrade: dpkg -i of a second build with a higher version, smoke again
#   4. dpkg -r, dpkg --purge: every file the package had is gone
# Every server started is killed by PID, pass or fail.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

PKG=jitsi-prosody-security
DOC="/usr/share/doc/$PKG"
SO=/usr/lib/x86_64-linux-gnu/lua/5.4/jitsi_security.so
PLUGINS=/usr/share/jitsi-meet/prosody-plugins

PASSED=0
STEP=""
step() {
  STEP="$*"
  echo
  echo "=== test-install: $STEP"
}
ok() {
  PASSED=$((PASSED + 1))
  echo "ok $PASSED - $STEP"
}
die() {
  echo "test-install: FAILED: ${STEP:+$STEP: }$*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs and removes a package with dpkg)"
command -v prosody >/dev/null 2>&1 || die "prosody is not installed (run: make deps-apt)"
command -v node >/dev/null 2>&1 || die "node is not installed (run: make deps-apt)"
[ -f tests/e2e/node_modules/@xmpp/client/package.json ] || die "tests/e2e/node_modules is missing (run: make deps-npm)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/test-install.XXXXXX")"
mkdir -p "$TMP/pids" "$TMP/upgrade"
SMOKE_PID=""

kill_pid() { # TERM, up to 5 s, then KILL
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [ -n "$SMOKE_PID" ] && kill_pid "$SMOKE_PID"
  local f
  for f in "$TMP"/pids/*.pid; do
    [ -e "$f" ] || continue
    kill_pid "$(cat "$f")"
  done
  if [ "$rc" -ne 0 ] && dpkg -s "$PKG" >/dev/null 2>&1; then
    echo "test-install: removing $PKG after the failure" >&2
    dpkg --purge "$PKG" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
  if [ "$rc" -ne 0 ]; then
    echo "test-install: $PASSED passed, 1 failed"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The smoke script, in the background so that a signal still reaches cleanup.
smoke() {
  env -u LUA_CPATH -u LUA_CPATH_5_4 -u LUA_PATH -u LUA_PATH_5_4 SMOKE_PID_DIR="$TMP/pids" \
    node --experimental-websocket --test-reporter=spec tests/install/smoke.mjs "$@" &
  SMOKE_PID=$!
  local rc=0
  wait "$SMOKE_PID" || rc=$?
  SMOKE_PID=""
  return "$rc"
}

# Regular files and links the package has (dpkg -L lists directories too).
package_files() {
  dpkg -L "$PKG" | while IFS= read -r p; do
    if [ -f "$p" ] || [ -L "$p" ]; then echo "$p"; fi
  done
}

if dpkg -s "$PKG" >/dev/null 2>&1; then
  echo "test-install: note: $PKG $(dpkg-query -W -f='${Version}' "$PKG") was installed before; this test removes it at the end"
fi
plugins_dir_existed=no
[ -d "$PLUGINS" ] && plugins_dir_existed=yes

# --- 1. build and install ---------------------------------------------------
step "make deb"
out="$(make --no-print-directory deb)" || die "make deb failed"
echo "$out"
DEB1="$(sed -n 's/^make deb: //p' <<<"$out" | tail -1)"
[ -f "$DEB1" ] || die "make deb printed no package path"
V1="$(dpkg-deb -f "$DEB1" Version)"
depends="$(dpkg-deb -f "$DEB1" Depends)"
echo "Depends: $depends"
grep -q 'prosody (>= 0.12) | prosody-13.0' <<<"$depends" || die "Depends lacks prosody (>= 0.12) | prosody-13.0"
grep -qw 'lua5.4' <<<"$depends" || die "Depends lacks lua5.4"
if grep -Eqi 'luarocks|luaossl|basexx|cjson' <<<"$depends"; then die "Depends names a luarock: $depends"; fi
ok

step "the package never ships a file that jitsi-meet-prosody ships"
# resources/prosody-plugins of jitsi-meet has none of our names; the package
# must stay at exactly these five plugin files there.
plugin_files="$(dpkg-deb -c "$DEB1" | awk '{print $NF}' | grep "^\./usr/share/jitsi-meet/" | grep -v '/$' | sort)"
expected="$(printf '%s\n' ./usr/share/jitsi-meet/prosody-plugins/mod_{auth_hybrid_matrix_token,auth_matrix_user_verification,jitsi_security_admin,matrix_power_sync,token_security_ondemand}.lua)"
[ "$plugin_files" = "$expected" ] || die "unexpected files under /usr/share/jitsi-meet: $plugin_files"
ok

step "dpkg -i $(basename "$DEB1") (over a hand-copied original plugin)"
# The originals' READMEs had admins copy the Lua files by hand; dpkg replaces
# such unowned files (and removes them with the package).
hand_copied=""
if [ ! -e "$PLUGINS/mod_token_security_ondemand.lua" ]; then
  mkdir -p "$PLUGINS"
  echo '-- a hand-copied original mod_token_security_ondemand.lua (test-install)' >"$PLUGINS/mod_token_security_ondemand.lua"
  hand_copied="$PLUGINS/mod_token_security_ondemand.lua"
fi
dpkg -i "$DEB1" || die "dpkg -i $DEB1 failed"
if [ -n "$hand_copied" ]; then
  dpkg-deb --fsys-tarfile "$DEB1" | tar -xO ./usr/share/jitsi-meet/prosody-plugins/mod_token_security_ondemand.lua | cmp -s - "$hand_copied" ||
    die "$hand_copied was not replaced by the package's file"
fi
[ "$(dpkg-query -W -f='${Status} ${Version}' "$PKG")" = "install ok installed $V1" ] || die "not installed as $V1"
for f in "$SO" "$PLUGINS"/mod_{auth_matrix_user_verification,auth_hybrid_matrix_token,token_security_ondemand,matrix_power_sync}.lua \
  "$DOC/README.md" "$DOC/examples/standard-tokens.cfg.lua" "$DOC/examples/element-matrix.cfg.lua" "$DOC/examples/hybrid.cfg.lua"; do
  [ -f "$f" ] || die "$f is missing after install"
done
ls "$DOC"/docs/*.md >/dev/null 2>&1 || die "$DOC/docs/*.md is missing after install"
ok

step "lua5.4 finds jitsi_security.so on its default cpath"
found="$(env -u LUA_CPATH -u LUA_CPATH_5_4 lua5.4 -e 'print(package.searchpath("jitsi_security", package.cpath))')"
[ "$found" = "$SO" ] || die "lua5.4 finds '$found', expected $SO"
ok

step "the admin commands run from the installed files (prosodyctl mod_jitsi_security_admin)"
cat >"$TMP/admin.cfg.lua" <<CFG
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins" }
data_path = "$TMP"
certificates = "$TMP"
pidfile = "$TMP/admin.pid"
run_as_root = true
modules_disabled = { "s2s" }
VirtualHost "meet.example.com"
    authentication = "matrix_user_verification"
    app_id = "install-test"
    app_secret = "install-test-secret-0123456789"
CFG
name="$(env -u LUA_CPATH -u LUA_CPATH_5_4 prosodyctl --config "$TMP/admin.cfg.lua" mod_jitsi_security_admin room-name '!abc:example.org' 2>"$TMP/admin.err")" \
  || die "room-name failed: $name $(cat "$TMP/admin.err")"
[ "$name" = "efqweyz2mv4gc3lqnrss433sm4" ] || die "room-name printed '$name'"
check="$(env -u LUA_CPATH -u LUA_CPATH_5_4 prosodyctl --config "$TMP/admin.cfg.lua" mod_jitsi_security_admin check-token meet.example.com x.y 2>"$TMP/admin.err" || true)"
grep -q 'format .*FAIL' <<<"$check" || die "check-token printed: $check"
ok

# --- 2. the shipped examples on the system Prosody --------------------------
step "smoke: the installed examples on the system Prosody ($V1)"
smoke "$DOC"/examples/*.cfg.lua || die "smoke test failed"
ok

# --- 3. upgrade -------------------------------------------------------------
V2="${V1}+upgradetest1"
step "build $V2 and upgrade to it"
out="$(make --no-print-directory deb DEB_VERSION="$V2" DEB_DIR="$TMP/upgrade")" || die "make deb (upgrade build) failed"
DEB2="$(sed -n 's/^make deb: //p' <<<"$out" | tail -1)"
[ -f "$DEB2" ] || die "no upgrade package"
dpkg --compare-versions "$V2" gt "$V1" || die "$V2 is not newer than $V1"
files_before="$(package_files | sort)"
dpkg -i "$DEB2" || die "dpkg -i $DEB2 (upgrade) failed"
[ "$(dpkg-query -W -f='${Status} ${Version}' "$PKG")" = "install ok installed $V2" ] || die "not upgraded to $V2"
[ "$(package_files | sort)" = "$files_before" ] || die "the upgrade changed the file list"
ok

step "smoke after the upgrade ($V2)"
smoke "$DOC"/examples/*.cfg.lua || die "smoke test after the upgrade failed"
ok

# --- 4. remove and purge ----------------------------------------------------
step "dpkg -r, then dpkg --purge: nothing of the package remains"
dpkg -L "$PKG" >"$TMP/list"
package_files >"$TMP/files"
[ -s "$TMP/files" ] || die "dpkg -L lists no files"
dpkg -r "$PKG" || die "dpkg -r failed"
[ "$(dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true)" != "install ok installed" ] || die "still installed after dpkg -r"
left=()
while IFS= read -r f; do
  if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done <"$TMP/files"
[ ${#left[@]} -eq 0 ] || die "left after dpkg -r: ${left[*]}"
# The package has no conffiles, so dpkg -r already left nothing to purge
# (dpkg may say so); purge anyway, as an admin would.
dpkg --purge "$PKG" || die "dpkg --purge failed"
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -qv 'not-installed'; then
  die "dpkg still knows $PKG after purge: $(dpkg-query -W -f='${Status}' "$PKG")"
fi
while IFS= read -r f; do
  if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done <"$TMP/files"
[ ${#left[@]} -eq 0 ] || die "left after dpkg --purge: ${left[*]}"
[ ! -e "$DOC" ] || die "$DOC remains"
[ ! -e "$SO" ] || die "$SO remains"
if [ "$plugins_dir_existed" = no ] && [ -e "$PLUGINS" ]; then die "$PLUGINS remains (it did not exist before)"; fi
echo "removed: $(wc -l <"$TMP/files") files ($(wc -l <"$TMP/list") paths listed by dpkg -L)"
ok

echo
echo "test-install: $PASSED passed, 0 failed"
