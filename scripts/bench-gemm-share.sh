#!/bin/sh
# bench-gemm-share.sh BENCH - share of training time spent in GEMM (OpenBLAS sgemm), from
# perf samples of a few training steps of each network. Needs perf (Debian linux-perf);
# says so and exits 0 where perf cannot sample.
set -u
bench=$1
if ! command -v perf >/dev/null 2>&1 || ! perf record -q -o /dev/null true >/dev/null 2>&1; then
    echo "training GEMM share: perf is not available here (apt-get install linux-perf)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for arch in lenetpp face; do
    perf record -q -o "$tmp/$arch.data" "$bench" --train-only "$arch" >/dev/null 2>&1 || continue
    perf report -i "$tmp/$arch.data" --no-children --stdio --sort dso,sym 2>/dev/null |
        awk -v arch="$arch" '
            /^ +[0-9.]+%/ { p = $1; sub("%", "", p); total += p; if ($0 ~ /sgemm|gemm_/) g += p }
            END { if (total > 0) printf "training GEMM share (%s): %.1f%% of samples in sgemm\n", arch, 100 * g / total }'
done
