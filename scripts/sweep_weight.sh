#!/usr/bin/env bash
# Magnitude weight pruning of the published ResNet-56 to P% (one global threshold over all conv weights), STEPS
# gradual events inside a masked quick fine-tune, the compact sparse file beside each checkpoint, then the table
# of accuracy and measured file sizes against the equally fine-tuned dense model.
#   bash scripts/sweep_weight.sh                               # after scripts/main.sh: 30 50 70 90 95 %
#   PERCENTS=90 STEPS=1 bash scripts/sweep_weight.sh           # one point, one-shot pruning
# Env: PERCENTS, STEPS (default 4), OUT (default runs/sweep-weight), PUBLISH=1 (table into results/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need "$BASE/r56.pt" "$BASE/r56-ft.pt"
OUT=${OUT:-runs/sweep-weight}; no_dash OUT
PERCENTS=${PERCENTS:-"30 50 70 90 95"}
STEPS=${STEPS:-4}
mkdir -p "$OUT"
made=()
for p in $PERCENTS; do
  step "$OUT/r56-p$p.pt" python -m pruning_weight.prune "$BASE/r56.pt" --percent "$p" --finetune --steps "$STEPS" \
    "${QUICK_FT[@]}" --data-dir "$DATA" --threads "$THREADS" --no-progress --out "$OUT/r56-p$p.pt"
  made+=("$OUT/r56-p$p.pt")
done
python -m pruning_weight.report "${made[@]}" --baseline "$BASE/r56-ft.pt" --out "$(results_dir "$OUT")/weight_pruning_accuracy"
