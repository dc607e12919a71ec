#!/bin/sh
# experiment-mnist.sh - Wen et al.'s MNIST experiment (Fig. 3): LeNets++ with softmax only
# and with softmax + center loss for lambda in {0.001, 0.01, 0.1}, alpha 0.5. Writes the 2-D
# test feature scatter plots and a table (test accuracy, intra-class / inter-centre distance
# ratio) to docs/mnist/, and prints the table.
#
#   sh scripts/experiment-mnist.sh [FACEVER]     (env: STEPS, BATCH, LR, JOBS, SEED)
set -eu
facever=${1:-./facever}
steps=${STEPS:-1200}
batch=${BATCH:-64}
lr=${LR:-0.02}
jobs=${JOBS:-2}
seed=${SEED:-1}
data=tests/data/mnist
out=docs/mnist
work=build/mnist
[ -f "$data/train-images-idx3-ubyte" ] || sh scripts/mnist-data.sh
mkdir -p "$out" "$work"

run() { # name loss lambda
    "$facever" train --data "mnist:$data" --arch lenetpp --loss "$2" --lambda "$3" --alpha 0.5 \
        --batch "$batch" --lr "$lr" --schedule cosine --max-steps "$steps" --seed "$seed" \
        --log-every 100 --report "$out/$1" --out "$work/$1.fvm" \
        >"$work/$1.txt" 2>"$work/$1.log"
}

configs="softmax:softmax:0 center-0.001:center:0.001 center-0.01:center:0.01 center-0.1:center:0.1"
running=0
for c in $configs; do
    name=${c%%:*}; rest=${c#*:}; loss=${rest%%:*}; lambda=${rest#*:}
    run "$name" "$loss" "$lambda" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait; running=0; fi
done
wait

table="$out/README.md"
{
    echo "# LeNets++ on MNIST: softmax vs softmax + center loss"
    echo
    echo "\`make experiment-mnist\` ($steps steps of batch $batch, lr $lr cosine, alpha 0.5, seed $seed)."
    echo "Ratio = mean distance of a test feature to its class mean / mean distance between class means."
    echo
    echo "| run | lambda | test accuracy | intra / inter ratio | plot |"
    echo "|---|---|---|---|---|"
    for c in $configs; do
        name=${c%%:*}; rest=${c#*:}; lambda=${rest#*:}
        acc=$(awk '$1 == "test_accuracy" {printf "%.2f%%", 100 * $2}' "$work/$name.txt")
        ratio=$(awk '$1 == "intra_inter_ratio" {print $2}' "$work/$name.txt")
        echo "| $name | $lambda | ${acc:-failed} | ${ratio:-failed} | [$name.svg]($name.svg) |"
    done
} >"$table"
cat "$table"
