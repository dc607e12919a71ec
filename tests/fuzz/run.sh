#!/bin/sh
# run.sh - `make fuzz-run`: runs each libFuzzer harness for SECONDS on a fresh copy of
# its seed corpus (tests/fuzz/corpus/NAME, committed, and BUILD_DIR/seeds/NAME, made by
# `make fuzz`) and fails on any crash, leak, timeout, OOM or sanitizer report.
#
#   sh tests/fuzz/run.sh BUILD_DIR SECONDS JOBS NAME...
#
# JOBS harnesses run at once (1 by default; 2 fits a 2-core machine). Crash inputs
# and each harness's log are left in BUILD_DIR/run/NAME/.
set -u
build=$1 seconds=$2 jobs=$3
shift 3
# One BLAS thread: the harnesses are single-threaded, and idle OpenBLAS threads
# only cost time under the sanitizers.
export OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=1:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1"

run_one() {
    name=$1
    dir=$build/run/$name
    rm -rf "$dir"
    mkdir -p "$dir/corpus"
    cp tests/fuzz/corpus/"$name"/* "$dir/corpus/" 2>/dev/null
    cp "$build"/seeds/"$name"/* "$dir/corpus/" 2>/dev/null
    "$build/fuzz_$name" "$dir/corpus" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -detect_leaks=1 -timeout=30 -print_final_stats=1 -artifact_prefix="$dir/" \
        > "$dir/log" 2>&1
    echo $? > "$dir/rc"
}

running=0
for name in "$@"; do
    run_one "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

failed=0 total_runs=0
printf '%-12s %10s %10s %8s %6s  %s\n' harness runs exec/s corpus cov result
for name in "$@"; do
    dir=$build/run/$name
    rc=$(cat "$dir/rc" 2>/dev/null || echo 99)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$dir/log" | tail -1)
    corpus=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p')
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\) .*/\1/p')
    result=ok
    if [ "$rc" != 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$dir/log"; then
        result="FAILED (rc $rc; see $dir/log)"
        failed=$((failed + 1))
        grep -E 'ERROR:|runtime error:|SUMMARY:|Test unit written' "$dir/log" | head -5 | sed 's/^/    /'
    fi
    total_runs=$((total_runs + ${runs:-0}))
    printf '%-12s %10s %10s %8s %6s  %s\n' "$name" "${runs:-?}" "${speed:-?}" "${corpus:-?}" \
        "${cov:-?}" "$result"
done
echo "fuzz-run: $# harnesses x ${seconds}s, $total_runs executions in all, $failed failed"
[ "$failed" -eq 0 ]
