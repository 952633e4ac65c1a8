#!/usr/bin/env bash
# Magnitude weight pruning sweep of the converted ResNet-56: prune to P% (one global threshold over all
# conv weights), masked fine-tune on the JPEG training set, write the compact sparse file next to each
# checkpoint, then tabulate accuracy and measured file sizes against the equally fine-tuned dense model.
#
#   CIFAR10_DIR=~/.cache/cifar-compress/cifar10 bash scripts/sweep_weight.sh
#   PERCENTS="90" STEPS=1 bash scripts/sweep_weight.sh          # one point, one-shot pruning
#
# Recipe (short CPU fine-tune, the same one as the dense baseline runs/base/r56-ft-quick.pt):
# --recipe quick --subset 10000 (1 epoch, lr 0.01 cosine, wd 1e-4, momentum 0.9, 10,000 JPEG train images),
# plus STEPS gradual pruning events over the first half of it. Existing outputs are kept (rerun = resume sweep).
set -euo pipefail
cd "$(dirname "$0")/.."

PARENT=${PARENT:-runs/base/r56.pt}
BASELINE=${BASELINE:-runs/base/r56-ft-quick.pt}
OUTDIR=${OUTDIR:-runs/weight}
PERCENTS=${PERCENTS:-"30 50 70 90 95"}
STEPS=${STEPS:-4}
THREADS=${THREADS:-1}
RECIPE=${RECIPE:-"--recipe quick --subset 10000"}
export CIFAR10_DIR=${CIFAR10_DIR:-$HOME/.cache/cifar-compress/cifar10}

mkdir -p "$OUTDIR/logs"
outs=()
for P in $PERCENTS; do
    out="$OUTDIR/r56-p$P.pt"
    outs+=("$out")
    if [ -f "$out" ]; then echo "keep $out"; continue; fi
    # shellcheck disable=SC2086
    python -m pruning_weight.prune "$PARENT" --percent "$P" --out "$out" --finetune --steps "$STEPS" \
        $RECIPE --threads "$THREADS" --no-progress 2>&1 | tee "$OUTDIR/logs/r56-p$P.log"
done
python -m pruning_weight.report "${outs[@]}" --baseline "$BASELINE" --out results/weight_pruning_accuracy
