#!/usr/bin/env bash
# bench-peer.sh - `make bench-peer`: facever against XNNPACK and ONNX Runtime on the same
# networks, input, batch (1) and thread count (1), in alternating rounds, then a table.
#
#   NETS_TOOL=build/tests/peer/nets bash scripts/bench-peer.sh
#
# Each round runs facever's timing tool (tests/peer/nets.c) for all NETS, then the
# peers' run.sh (ROUNDS=1) for the same nets: A B A B ... Both check their outputs
# against the float64 reference before timing and refuse to time on a disagreement.
# Per net and engine the table gives the median over rounds of each round's median
# of RUNS calls, and facever's time over each peer's (below 1: facever is faster).
#
# Environment (all optional):
#   NETS        nets to time (mobilefacenet onet pnet@250x250); rnet and pnet@HxW too
#   ROUNDS      rounds (3)
#   RUNS        timed calls per measurement (40, at least 40)
#   FV_CPU      facever's CPU level, passed to facever only; the peers are unaffected
#   PEERS       which peers run.sh runs ("ort xnnpack")
#   PEER_RUN    the peers' entry point (../shared/peer/run.sh); absent: skip, status 0
#   TFLITE_DIR  the .tflite files `make models` fetched (models/tflite)
#   MODELS_DIR  facever's imported networks (models)
#   NETS_TIMEOUT, PEER_TIMEOUT  seconds one facever / peer process may take (120, 600);
#               the first peer call may set up the peers (Debian packages, npm, an
#               XNNPACK build: minutes) and gets PEER_SETUP_TIMEOUT (1800)
set -euo pipefail
cd "$(dirname "$0")/.."

NETS_TOOL=${NETS_TOOL:-build/tests/peer/nets}
NETS=${NETS:-mobilefacenet onet pnet@250x250}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-40}
PEER_RUN=${PEER_RUN:-../shared/peer/run.sh}
TFLITE_DIR=${TFLITE_DIR:-models/tflite}
MODELS_DIR=${MODELS_DIR:-models}
NETS_TIMEOUT=${NETS_TIMEOUT:-120}
PEER_TIMEOUT=${PEER_TIMEOUT:-600}
PEER_SETUP_TIMEOUT=${PEER_SETUP_TIMEOUT:-1800}

say() { echo "bench-peer: $*"; }
die() { echo "bench-peer: $*" >&2; exit 1; }

if [ ! -f "$PEER_RUN" ]; then
    say "skipped: no peer benchmarks at $PEER_RUN (set PEER_RUN to run.sh of the peer set-up)"
    exit 0
fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
if ! [[ $RUNS =~ ^[0-9]+$ ]] || [ "$RUNS" -lt 40 ]; then die "RUNS must be at least 40"; fi
for t in "$NETS_TIMEOUT" "$PEER_TIMEOUT" "$PEER_SETUP_TIMEOUT"; do
    [[ $t =~ ^[1-9][0-9]*$ ]] || die "timeouts are whole seconds"
done
read -r -a nets <<<"$NETS"
[ ${#nets[@]} -gt 0 ] || die "NETS is empty"
[ -x "$NETS_TOOL" ] || die "no $NETS_TOOL (make bench-peer builds it)"
[ -d "$TFLITE_DIR" ] || die "no $TFLITE_DIR: run make models"
# The reference the peers check against; the committed copy when it is not beside run.sh.
reference=$(dirname "$PEER_RUN")/../reference/tflite-reference-outputs.json
[ -f "$reference" ] || reference=tests/fixtures/tflite-reference-outputs.json

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-peer.XXXXXX")
trap 'rm -rf "$work"' EXIT
results=$work/results

# run NAME TIMEOUT CMD...: runs CMD under a timeout, its result lines (marked with the
# round) to stdout and $results; its stderr is shown when it fails, its checks in round 1.
run() {
    local name=$1 limit=$2 status=0
    shift 2
    echo "+ $*"
    timeout --kill-after=10 "$limit" "$@" >"$work/out" 2>"$work/err" || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$work/err" >&2
        if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then die "$name timed out after ${limit}s"; fi
        die "$name failed (exit $status)"
    fi
    if [ "$round" = 1 ]; then
        grep -E '^(nets|peer): (check|level|ort:|xnnpack:)' "$work/err" | sed 's/^/  /' || true
    fi
    grep -E '^(facever|peer) ' "$work/out" | sed -E "s/ round=[0-9]+\$//; s/\$/ round=$round/" |
        tee -a "$results" || die "$name printed no results"
}

cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') || cpu_model=unknown
has_flag() { grep -m1 '^flags' /proc/cpuinfo | grep -qw "$1" && echo yes || echo no; }
cpu_flags="AVX2 $(has_flag avx2), AVX-512 $(has_flag avx512f), BF16 $(has_flag avx512_bf16)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "$cpu_model, $(nproc) cpus; $cpu_flags; load average $load_before"
say "nets: ${nets[*]}; $ROUNDS rounds of facever then peers; RUNS=$RUNS; FV_CPU=${FV_CPU:-(unset)}"

peer_limit=$PEER_SETUP_TIMEOUT
for round in $(seq "$ROUNDS"); do
    say "round $round/$ROUNDS"
    run facever "$NETS_TIMEOUT" env OPENBLAS_NUM_THREADS=1 "$NETS_TOOL" --models "$MODELS_DIR" \
        --reference "$reference" --runs "$RUNS" "${nets[@]}"
    run peers "$peer_limit" env -u FV_CPU ROUNDS=1 RUNS="$RUNS" bash "$PEER_RUN" "$TFLITE_DIR" "${nets[@]}"
    peer_limit=$PEER_TIMEOUT
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The table: per net and engine, the median over rounds of median_ms; the lowest cpu_pct
# of any round (well below 100: a round was preempted, its figure disturbed).
level=$(grep -m1 -o 'level=[^ ]*' "$results" | cut -d= -f2)
echo
say "$cpu_model; $cpu_flags; facever level ${level:-?}, fp32; batch 1, one thread"
say "median over $ROUNDS rounds of the median of $RUNS calls, ms (ORT: its synchronous run());"
say "ratio below 1: facever faster; load average $load_before before, $load_after after"
awk '
    function median(key,    n, i, j, v, t) {
        n = split(times[key], v, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return n == 0 ? "" : n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function field(name,    i) {
        for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2)
        return ""
    }
    {
        if ($1 == "facever") { engine = "facever"; net = $2 " " $3 }
        else { engine = $2; net = $3 " " $4 }
        key = engine SUBSEP net
        times[key] = times[key] " " field("median_ms")
        cpu = field("cpu_pct") + 0
        if (!(key in low) || cpu < low[key]) low[key] = cpu
        if (!(net in seen)) { seen[net] = 1; nets[++count] = net }
    }
    function cell(key) { return key in times ? sprintf("%.3f", median(key)) : "-" }
    function lowest(key) { return key in low ? low[key] : "-" }
    function ratio(a, b) { return a == "-" || b == "-" || b == 0 ? "-" : sprintf("%.2f", a / b) }
    END {
        printf "%-22s %11s %11s %11s %17s %13s %s\n", "net", "facever", "XNNPACK", "ORT",
            "facever/XNNPACK", "facever/ORT", "lowest cpu_pct f/x/o"
        for (i = 1; i <= count; i++) {
            f = cell("facever" SUBSEP nets[i]); x = cell("xnnpack" SUBSEP nets[i])
            o = cell("ort" SUBSEP nets[i])
            printf "%-22s %11s %11s %11s %17s %13s %s/%s/%s\n", nets[i], f, x, o, ratio(f, x),
                ratio(f, o), lowest("facever" SUBSEP nets[i]), lowest("xnnpack" SUBSEP nets[i]),
                lowest("ort" SUBSEP nets[i])
        }
    }' "$results"
