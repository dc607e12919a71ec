#!/bin/sh
# ci.sh - the hardening stage of CI (called from .ci/run after `make deps`):
#   1. the whole default test suite under ASan + UBSan (`make asan`);
#   2. the end-to-end server tests again, with LeakSanitizer reports of every process
#      (the sanitized `facever serve` children included) collected and required empty,
#      and the hostile-input run against the sanitized server, which must answer every
#      malformed request, keep its memory, and exit 0 with no leak report on SIGTERM;
#   3. every libFuzzer harness (fuzz_heif and fuzz_webp with seeds made by `make fuzz`)
#      for FUZZ_SECONDS (60) seconds.
# Sized for a 2-core machine: about 25-30 minutes in all.
set -u
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
summary=""
failed=0
t_all=$(date +%s)

step() { # name, command...
    name=$1
    shift
    t0=$(date +%s)
    echo "==> $name"
    if "$@"; then result=ok; else result=FAILED; failed=$((failed + 1)); fi
    summary="$summary$(printf '  %-44s %-7s %5ss' "$name" "$result" $(($(date +%s) - t0)))
"
}

e2e_leaks() {
    logs=$(mktemp -d /tmp/facever-lsan-XXXXXX)
    ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan" FACEVER=./build-asan/facever \
        build-asan/tests/unit --jobs 1 --filter '@(server|server_tier)/*'
    rc=$?
    if ls "$logs"/asan* > /dev/null 2>&1; then
        echo "sanitizer reports from the end-to-end run (server or test runner):"
        cat "$logs"/asan* | head -60
        rc=1
    fi
    rm -rf "$logs"
    return $rc
}

step "make asan (default suite, ASan + UBSan)" make asan
step "e2e server tests, LeakSanitizer on the server" e2e_leaks
step "hostile input vs ./facever (memory back to baseline)" \
    env FACEVER=./facever ROUNDS="${HOSTILE_ROUNDS:-60}" sh scripts/hostile.sh
step "hostile input vs build-asan/facever (no leaks, no reports)" \
    env FACEVER=./build-asan/facever ROUNDS="${HOSTILE_ROUNDS:-60}" RSS_CHECK=0 sh scripts/hostile.sh
step "fuzz: every harness ${seconds}s, two at a time" make fuzz-run SECONDS="$seconds" FUZZ_JOBS=2

echo "==> hardening summary"
printf '%s' "$summary"
echo "  total $(($(date +%s) - t_all))s, $failed step(s) failed"
[ "$failed" -eq 0 ]
