#!/bin/bash
# submit.sh - submit a batch embedding as a Slurm array and its merge as a dependent job.
#
#   deploy/slurm/submit.sh --images lfw/ --pairs pairs.txt --out shards/ --shards 16
#
# Prints the two job ids. The merge runs after every array task succeeded
# (--dependency=afterok) and is cancelled if one fails (--kill-on-invalid-dep); rerun
# this script with the same arguments after fixing the cause: finished shards are
# skipped. Partition, account and the like come from sbatch's own environment
# variables (SBATCH_PARTITION, SBATCH_ACCOUNT, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

usage() {
    cat <<USAGE
usage: $0 --pairs FILE --out DIR [options]
  --pairs FILE          pairs file to evaluate (and, without --list, the images to embed)
  --images DIR          folder the image names are relative to
  --list FILE           embed the images of this list (one path per line) instead
  --out DIR             shard folder (created; shared by all tasks: a shared file system)
  --shards N            array tasks (default 8)
  --cpus N              CPUs per task, the workers of each (default 4)
  --report FILE         JSON report (default OUT/report.json)
  --facever PATH        the facever binary (default: $repo/facever if built, else facever)
  --models DIR          model folder (default: \$FACEVER_MODELS, else $repo/models)
  --face-options "..."  options for both embedding and merge (--precision fp32, --landmarks F,
                        --detect-max-side N, ...): they must be the same for both
  --eval-options "..."  options for the merge only (--pca-dim K, --whiten, --roc FILE, ...)
  --time-limit T        time limit per array task (sbatch --time; default the script's 4 h)
USAGE
}

images="" pairs="" list="" out="" shards=8 cpus=4 report="" face="" evalopts="" time_limit=""
bin="" models="${FACEVER_MODELS:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --images) images=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        --list) list=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --shards) shards=$2; shift 2 ;;
        --cpus) cpus=$2; shift 2 ;;
        --report) report=$2; shift 2 ;;
        --facever) bin=$2; shift 2 ;;
        --models) models=$2; shift 2 ;;
        --face-options) face=$2; shift 2 ;;
        --eval-options) evalopts=$2; shift 2 ;;
        --time-limit) time_limit=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "submit.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -z "$pairs" ] || [ -z "$out" ]; then
    usage >&2
    exit 2
fi
case "$shards" in ''|*[!0-9]*|0) echo "submit.sh: --shards needs a positive number" >&2; exit 2 ;; esac
case "$cpus" in ''|*[!0-9]*|0) echo "submit.sh: --cpus needs a positive number" >&2; exit 2 ;; esac

# Jobs start in other directories on other nodes: every path absolute.
absolute() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
mkdir -p "$out"
out=$(cd "$out" && pwd)
mkdir -p "$out/logs"
pairs=$(absolute "$pairs")
[ -n "$list" ] && list=$(absolute "$list")
[ -n "$images" ] && images=$(cd "$images" && pwd)
report=$(absolute "${report:-$out/report.json}")
if [ -z "$bin" ]; then
    if [ -x "$repo/facever" ]; then bin=$repo/facever; else bin=$(command -v facever); fi
fi
bin=$(absolute "$bin")
models=${models:-$repo/models}
models=$(cd "$models" && pwd)

export FACEVER_BATCH_BIN=$bin FACEVER_BATCH_IMAGES=$images FACEVER_BATCH_PAIRS=$pairs
export FACEVER_BATCH_LIST=$list FACEVER_BATCH_OUT=$out FACEVER_BATCH_REPORT=$report
export FACEVER_BATCH_FACE_OPTIONS=$face FACEVER_BATCH_EVAL_OPTIONS=$evalopts
export FACEVER_MODELS=$models

limit=()
[ -n "$time_limit" ] && limit=(--time="$time_limit")
array=$(sbatch --parsable --array="0-$((shards - 1))" --cpus-per-task="$cpus" "${limit[@]}" \
    --output="$out/logs/embed-%A_%a.out" "$here/embed-array.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
    --output="$out/logs/merge-%j.out" "$here/merge.sbatch")
merge=${merge%%;*}
echo "submitted: embedding array job $array ($shards tasks, $cpus CPUs each) -> $out"
echo "submitted: merge job $merge (after every task of $array succeeds) -> $report"
echo "$array $merge" > "$out/logs/jobs"
