#!/usr/bin/env bash
# Run the fuzz targets for FUZZ_SECONDS (default 60) seconds each and list
# what they found. `make fuzz` runs this; it is not part of `make test`.
#   fuzz/run.sh                          every target
#   fuzz/run.sh token_verify room_decode some targets
#   FUZZ_SECONDS=600 fuzz/run.sh         longer
# The corpus grows in fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/),
# findings land in fuzz/artifacts/<target>/, full logs in fuzz/logs/.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || exit 1
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); stable takes them with this.
export RUSTC_BOOTSTRAP=1

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
# -a: debug assertions (overflow checks) on, as in `cargo test`.
cargo fuzz build -a || exit 1

mkdir -p fuzz/logs
start=fuzz/logs/.start
touch "$start"
summary=()
found=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    corpora=("fuzz/corpus/$t")
    [ -d "fuzz/seeds/$t" ] && corpora+=("fuzz/seeds/$t")
    args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1)
    case $t in
        token_peek|token_verify) args+=(-dict=fuzz/dicts/token.dict) ;;
        uvs_response) args+=(-dict=fuzz/dicts/json.dict) ;;
    esac
    echo "== $t: ${secs}s"
    cargo fuzz run -a "$t" "${corpora[@]}" -- "${args[@]}" >"fuzz/logs/$t.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/logs/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "fuzz/logs/$t.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "fuzz/logs/$t.log" | tail -1)
    new=$(find "fuzz/artifacts/$t" -type f -newer "$start" ! -name 'slow-unit-*' | sort)
    line=$(printf '%-24s execs %10s  exec/s %7s  %-10s exit %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$rc")
    if [ -n "$new" ] || [ "$rc" -ne 0 ]; then
        found=1
        line+="  FINDINGS:"
        grep -m3 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)|^SUMMARY" "fuzz/logs/$t.log" | sed 's/^/    /'
        for f in $new; do
            line+=" $f"
            echo "    reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -a $t $f"
        done
        [ -z "$new" ] && line+=" (see fuzz/logs/$t.log)"
    fi
    summary+=("$line")
done
echo
echo "fuzz summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}"
if [ "$found" -ne 0 ]; then
    echo "fuzz: findings above; each becomes a test in tests/regressions.rs"
    exit 1
fi
echo "fuzz: no findings"
