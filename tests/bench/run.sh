#!/usr/bin/env bash
# make bench: every section of BENCHMARKS.md from one run, nothing copied by
# hand. This script starts a fresh BENCHMARKS.md with the run's header
# (machine, versions, commit, date, load average at the start and, filled
# in last, at the end); each benchmark then writes its own section, in this
# order:
#   1. examples/bench.rs         Rust micro-benchmarks, RS256 vs openssl speed
#   2. tests/bench/verify_bench.lua  the Lua API vs Lua + luaossl, login targets
#   3. callgrind (this script)   instructions per login, when valgrind exists
#   4. examples/bench_burst.mjs  Matrix login bursts on a real Prosody
#   5. examples/bench_resync.mjs the room state read on a real Synapse
#   6. examples/bench_direct.mjs when that file exists (direct mode)
# A step that fails or cannot run says so in the file, and the script exits
# non-zero at the end. Timings print numbers; nothing here asserts a time.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
MD=BENCHMARKS.md
export LUA_CPATH="$PWD/build/lua/?.so;;"
load() { cut -d' ' -f1-3 /proc/loadavg; }
first() { "$@" 2>&1 | head -n1; }

load_start=$(load)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
git diff --quiet HEAD -- src lua examples tests Cargo.toml Cargo.lock 2>/dev/null || commit="$commit (with uncommitted changes)"
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
prosody_bin=${PROSODY_BIN:-prosody}
prosody_version=$(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo '?')
[ -n "${PROSODY_BIN:-}" ] && prosody_version="$PROSODY_BIN"

cat >"$MD" <<HEAD
# Benchmarks

Written by \`make bench\` (tests/bench/run.sh) in one run: every section below comes from the program that
measured it, in this run. Nothing here is copied by hand; run \`make bench\` again to replace it all.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit
- Machine: $cpu, $(nproc) cores, $mem of memory
- Load average (1, 5, 15 min): $load_start at the start, @LOAD_END@ at the end
- Versions: $(first rustc -V); Prosody $prosody_version ($prosody_bin); $(first lua5.4 -v); $(first openssl version); node $(first node --version)

This machine is shared (2 cores, other builds and tests running): absolute times move from run to run. Trust the
ratios measured within one run (each against a reference timed the same way, e.g. RS256 against \`openssl speed\`,
both in CPU time) and the callgrind instruction counts, which do not depend on the load.
HEAD

status=0
failed() {
	status=1
	echo "make bench: FAILED: $1"
	printf '\n## %s (make bench)\n\nFAILED in this run: %s (see the output of make bench).\n' "$1" "$2" >>"$MD"
}

echo "== 1. Rust micro-benchmarks (examples/bench.rs)"
cargo run --release --locked --no-default-features --features vendored --example bench ||
	failed "Rust micro-benchmarks" "examples/bench.rs exited with an error"

echo "== 2. the Lua API vs Lua + luaossl (tests/bench/verify_bench.lua)"
lua5.4 tests/bench/verify_bench.lua ||
	failed "Token verification through the Lua API" "tests/bench/verify_bench.lua exited with an error"

echo "== 3. instructions per login (callgrind)"
if command -v valgrind >/dev/null; then
	tmp=$(mktemp -d)
	# Instructions of N2 logins minus N1 logins, divided by N2 - N1: the
	# cost of one login without the start-up.
	count() { # mode n -> instructions
		valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1.$2" lua5.4 tests/bench/login_profile.lua "$1" "$2" \
			>/dev/null 2>"$tmp/log.$1.$2" || { cat "$tmp/log.$1.$2" >&2; return 1; }
		sed -n 's/^summary: *//p' "$tmp/cg.$1.$2"
	}
	if l1=$(count login 200) && l2=$(count login 2200) && v1=$(count verify 200) && v2=$(count verify 2200) &&
		r1=$(count rs256-login 200) && r2=$(count rs256-login 2200); then
		{
			printf '\n## Instructions per login (callgrind, make bench)\n\n'
			printf '| call | instructions per call |\n|---|---:|\n'
			printf '| `authenticator:login(token, room)`, HS256, 480 B token | %s |\n' $(( (l2 - l1) / 2000 ))
			printf '| `verifier:verify(token)`, the same token | %s |\n' $(( (v2 - v1) / 2000 ))
			printf '| `authenticator:login(token, room)`, RS256 (2048-bit key), the same claims | %s |\n' $(( (r2 - r1) / 2000 ))
			printf '\n%s\n' "valgrind --tool=callgrind on tests/bench/login_profile.lua, (2,200 calls - 200 calls) / 2,000; $(first valgrind --version). Repeatable whatever the load; under valgrind SHA-256 runs ring's AVX code (no SHA extensions), so the HMAC weighs more here than on the CPU."
		} >>"$MD"
	else
		failed "Instructions per login (callgrind)" "valgrind on tests/bench/login_profile.lua failed"
	fi
	rm -rf "$tmp"
else
	printf '\n## Instructions per login (callgrind, make bench)\n\nNot measured: valgrind is not installed (apt-get install valgrind).\n' >>"$MD"
fi

echo "== 4. Matrix login burst (examples/bench_burst.mjs)"
# 200 WebSocket clients at once need file descriptors.
n=$(ulimit -n)
if [ "$n" != unlimited ] && [ "$n" -lt 4096 ]; then ulimit -Sn 4096 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"; fi
node --experimental-websocket examples/bench_burst.mjs ||
	failed "Matrix login burst" "examples/bench_burst.mjs exited with an error"

echo "== 5. room state on a real Synapse (examples/bench_resync.mjs)"
if [ -d build/synapse-venv ]; then
	node examples/bench_resync.mjs || failed "Room state read on a real Synapse" "examples/bench_resync.mjs exited with an error"
else
	failed "Room state read on a real Synapse" "no build/synapse-venv (make deps-synapse)"
fi

# Hook: direct-mode logins (another benchmark), when it is in the tree; it
# writes its own section like the others.
if [ -f examples/bench_direct.mjs ]; then
	echo "== 6. direct mode (examples/bench_direct.mjs)"
	node --experimental-websocket examples/bench_direct.mjs ||
		failed "Direct mode" "examples/bench_direct.mjs exited with an error"
fi

sed -i "s/@LOAD_END@/$(load)/" "$MD"
echo "make bench: wrote $MD (load average $load_start at the start, $(load) at the end)"
exit $status
