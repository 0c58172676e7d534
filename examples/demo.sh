#!/usr/bin/env bash
# `make demo`: a throw-away local Prosody with our plugins, a ready moderator
# token, and the command that shows the lobby and password at work.
# Runs until Ctrl-C, then stops Prosody and removes every file it made.
#
# Environment:
#   DEMO_HTTP_PORT  HTTP/WebSocket port on 127.0.0.1 (default: a free one)
#   DEMO_SECRET     HS256 secret of the demo (default "demo-secret-change-me")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SECRET="${DEMO_SECRET:-demo-secret-change-me}"
export DEMO_SECRET="$SECRET"
SO="$REPO/build/lua/jitsi_security.so"
CLIENT="examples/demo-client.mjs"

die() {
  echo "demo: $*" >&2
  exit 1
}

# --- prerequisites ----------------------------------------------------------
command -v prosody >/dev/null 2>&1 || die "prosody is not installed (run: make deps-apt)"
command -v node >/dev/null 2>&1 || die "node is not installed (run: make deps-apt)"
[ -f "$SO" ] || die "$SO is missing (run: make build)"
case "$SECRET" in
  *'"'* | *'\'* | *$'\n'*) die 'DEMO_SECRET must not contain ", \ or a newline' ;;
esac
if [ ! -f tests/e2e/node_modules/@xmpp/client/package.json ]; then
  echo "demo: installing the XMPP client library (npm ci in tests/e2e)..."
  (cd tests/e2e && npm ci --no-audit --no-fund) || die "npm ci in tests/e2e failed"
fi

# --- temp dir and cleanup ---------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/jitsi-security-demo.XXXXXX")"
PROSODY_PID=""
TAIL_PID=""

stop_pid() { # pid: TERM, up to 5 s, then KILL
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
  [ -n "$TAIL_PID" ] && stop_pid "$TAIL_PID"
  if [ -n "$PROSODY_PID" ]; then
    echo
    echo "demo: stopping Prosody (pid $PROSODY_PID)..."
    stop_pid "$PROSODY_PID"
    wait "$PROSODY_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  echo "demo: cleaned up ($TMP removed)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$TMP/data" "$TMP/certs"

# --- ports ------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -n "${DEMO_HTTP_PORT:-}" ]; then
  [[ "$DEMO_HTTP_PORT" =~ ^[0-9]+$ ]] && [ "$DEMO_HTTP_PORT" -ge 1 ] && [ "$DEMO_HTTP_PORT" -le 65535 ] ||
    die "DEMO_HTTP_PORT must be a port number, got '$DEMO_HTTP_PORT'"
  port_in_use "$DEMO_HTTP_PORT" && die "port $DEMO_HTTP_PORT on 127.0.0.1 is already in use (DEMO_HTTP_PORT)"
  HTTP_PORT="$DEMO_HTTP_PORT"
  C2S_PORT="$(node "$CLIENT" free-ports 1 "$HTTP_PORT")"
else
  read -r C2S_PORT HTTP_PORT < <(node "$CLIENT" free-ports 2)
fi

# --- config -----------------------------------------------------------------
CFG="$TMP/prosody.cfg.lua"
LOG="$TMP/prosody.log"
OUT="$TMP/prosody.stdout"
template="$(<examples/demo.cfg.lua.in)"
template="${template//@TMPDIR@/$TMP}"
template="${template//@REPO@/$REPO}"
template="${template//@C2S_PORT@/$C2S_PORT}"
template="${template//@HTTP_PORT@/$HTTP_PORT}"
template="${template//@APP_SECRET@/$SECRET}"
printf '%s\n' "$template" >"$CFG"
: >"$LOG"

# --- start Prosody ----------------------------------------------------------
echo "demo: starting Prosody (config $CFG)..."
LUA_CPATH_5_4="$REPO/build/lua/?.so;;" prosody --config "$CFG" -F >"$OUT" 2>&1 </dev/null &
PROSODY_PID=$!

show_failure() {
  echo "demo: $1" >&2
  echo "--- last lines of $LOG ---" >&2
  tail -n 40 "$LOG" >&2 || true
  echo "--- prosody stdout/stderr ---" >&2
  tail -n 20 "$OUT" >&2 || true
  exit 1
}

for i in $(seq 150); do
  kill -0 "$PROSODY_PID" 2>/dev/null || {
    wait "$PROSODY_PID" 2>/dev/null && code=0 || code=$?
    PROSODY_PID=""
    show_failure "Prosody exited during startup (exit code $code)"
  }
  port_in_use "$HTTP_PORT" && break
  [ "$i" -eq 150 ] && show_failure "Prosody did not open 127.0.0.1:$HTTP_PORT within 15 s"
  sleep 0.1
done
# The server runs, but did every module load?
if grep -E $'\terror\t|Error initializing module|Unable to load module|Failed to load module' "$LOG" >/dev/null; then
  show_failure "Prosody started with errors (a plugin did not load):"
fi

# --- banner -----------------------------------------------------------------
WS="ws://127.0.0.1:$HTTP_PORT/xmpp-websocket"
MOD_TOKEN="$(node "$CLIENT" token '{"iss":"demo-app","aud":"jitsi","sub":"localhost","room":"demo","context":{"user":{"name":"Moderator"},"room":{"lobby":true,"password":"demo-pass"}}}')"
if [ "$SECRET" = "demo-secret-change-me" ]; then ENVP=""; else ENVP="DEMO_SECRET='$SECRET' "; fi

cat <<EOF

==============================================================================
 jitsi-prosody-security demo: Prosody is running (pid $PROSODY_PID)

 XMPP domain      localhost            (SASL ANONYMOUS + Jitsi token)
 Conference MUC   conference.localhost (mod_token_security_ondemand)
 Lobby MUC        lobby.localhost
 WebSocket        $WS
 BOSH             http://127.0.0.1:$HTTP_PORT/http-bind
 Tokens           HS256, iss "demo-app", secret "$SECRET"
 Config           $CFG

 A moderator token for room "demo", valid 24 h; its context.room turns the
 lobby on and sets the password "demo-pass":

$MOD_TOKEN

 Clients connect with  $WS?room=demo&token=<token>

 Try it (in another terminal, from $REPO):

   ${ENVP}node --experimental-websocket $CLIENT run $WS $MOD_TOKEN

 Note: the lobby itself is provided by tests/prosody/mod_test_lobby.lua, a
 small test-only stand-in for jitsi-meet-prosody's persistent_lobby /
 muc_lobby_rooms, which are not in any package registry. On a real Jitsi
 server keep jitsi-meet's own lobby modules.

 Prosody log follows (info level). Press Ctrl-C to stop and clean up.
==============================================================================

EOF

# --- follow the log until Ctrl-C (or until Prosody dies) ---------------------
tail -n +1 -F --pid="$PROSODY_PID" "$LOG" 2>/dev/null &
TAIL_PID=$!
wait "$TAIL_PID" || true
TAIL_PID=""
if ! kill -0 "$PROSODY_PID" 2>/dev/null; then
  wait "$PROSODY_PID" 2>/dev/null && code=0 || code=$?
  PROSODY_PID=""
  # Ctrl-C reaches Prosody too; it may have shut down before we noticed.
  if [ "$code" -eq 0 ] && grep -q 'Shutting down: Received SIG' "$LOG"; then
    echo "demo: Prosody was stopped by a signal."
    exit 0
  fi
  show_failure "Prosody stopped unexpectedly (exit code $code)"
fi
