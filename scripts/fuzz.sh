#!/usr/bin/env bash
# Fuzzes the parsers of custody-core with cargo-fuzz (libFuzzer), one target after another.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#   FUZZ_TARGETS="jcs dsse" scripts/fuzz.sh 30   (a subset)
#
# Uses the nightly toolchain when rustup has one, else stable with RUSTC_BOOTSTRAP=1 (cargo-fuzz
# needs -Z flags); FUZZ_USE_STABLE=1 forces the latter, as on CI. Installs cargo-fuzz if it is missing. The fuzz project is its own workspace
# with its own target dir (fuzz/target); seeds from fuzz/seeds/<target> are copied into the
# working corpus fuzz/corpus/<target> first. Prints, per target, the executions libFuzzer ran
# and whether it left a crash artifact in fuzz/artifacts/<target>; exits 1 if any target did.
# On a shared machine run it as `nice -n 19 scripts/fuzz.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
read -r -a targets <<<"${FUZZ_TARGETS:-jcs envelope note_checkpoint tlog_proof proof_requests dsse}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ -z "${FUZZ_USE_STABLE:-}" ]] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
    echo "== toolchain: $(rustc +nightly --version)"
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    echo "== toolchain: $(rustc --version) with RUSTC_BOOTSTRAP=1"
fi

echo "== building ${targets[*]}"
for target in "${targets[@]}"; do
    "${fuzz[@]}" build --fuzz-dir fuzz "$target"
done

logs="fuzz/target/fuzz-logs"
mkdir -p "$logs"
summary=()
failed=0
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    if [[ -d "fuzz/seeds/$target" ]]; then
        cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    fi
    before="$(ls "$artifacts")"
    log="$logs/$target.log"
    echo "== fuzzing $target for ${seconds}s (log: $log)"
    # -timeout turns an input that runs for 10 s (an endless loop) into a timeout artifact.
    status=0
    "${fuzz[@]}" run --fuzz-dir fuzz "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)"
    new="$(comm -13 <(echo "$before") <(ls "$artifacts") | sed "s|^|$artifacts/|")"
    if [[ -n "$new" || $status -ne 0 ]]; then
        failed=1
        finding="CRASH (exit $status): ${new:-see $log}"
        grep -m1 -E "^(thread .* panicked|==[0-9]+==ERROR|SUMMARY)" "$log" || true
    else
        finding="none"
    fi
    summary+=("$(printf '%-16s %12s executions  %s' "$target" "${execs:-?}" "$finding")")
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
