#!/usr/bin/env bash
# Issue 5's protocol for 90% magnitude pruning of the published ResNet-56, in Han et al.'s order: train the dense
# network on the task's data, prune, retrain. The published weights were trained on the original (lossless)
# CIFAR-10, so "train" here is a dense fine-tune on the JPEG-copy training set (PARENT, made by
# `LR=0.05 OUT=runs/ft-e8-lr05 ONLY=base bash scripts/equal_finetune.sh 8`). From that parent, three runs of the
# same recipe (E epochs, lr LR cosine, all 50,000 training images):
#   dense   the parent fine-tuned further: the equally fine-tuned dense baseline
#   sparse  90% global magnitude pruning, WSTEPS gradual events over the first half, masked fine-tune
#   kd      the same, with Hinton KD (T 4, alpha 0.9) from the parent instead of plain cross-entropy
#
#   bash scripts/weight_prune_90.sh 10                                  # all three, one after another
#   ONLY="dense kd" THREADS=1 bash scripts/weight_prune_90.sh 10 &      # queues side by side on a 2-core CPU
#   ONLY=sparse THREADS=1 bash scripts/weight_prune_90.sh 10
#   ONLY=report bash scripts/weight_prune_90.sh 10                      # the table, once all three exist
#
# CPU_BF16=1 (default when the CPU has native bf16) trains with bf16 autocast, 1.5x faster on this CPU.
# A killed run continues where it stopped when the command is repeated.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # step OUTPUT command...
EPOCHS=${1:?usage: weight_prune_90.sh EPOCHS}
DATA=${CIFAR10_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cifar-compress/cifar10}
PARENT=${PARENT:-runs/ft-e8-lr05/r56-ft.pt}
OUT=${OUT:-runs/w90-from-ft-e$EPOCHS}
LR=${LR:-0.05}
WSTEPS=${WSTEPS:-16}
THREADS=${THREADS:-$(nproc)}
ONLY=${ONLY:-dense sparse kd report}
[ -f "$PARENT" ] || { echo "weight_prune_90.sh: $PARENT missing: make it with 'LR=0.05 OUT=runs/ft-e8-lr05 ONLY=base bash scripts/equal_finetune.sh 8'" >&2; exit 2; }
if [ -z "${CPU_BF16+x}" ]; then
  CPU_BF16=$(python -c "from common.machine import cpu_has_native_bf16; print(int(cpu_has_native_bf16()))")
fi
FT=(--recipe quick --epochs "$EPOCHS" --lr "$LR" --data-dir "$DATA" --threads "$THREADS" --no-progress)
[ "$CPU_BF16" = 1 ] && FT+=(--cpu-bf16)
PRUNE=(--percent 90 --finetune --steps "$WSTEPS")
mkdir -p "$OUT"
for item in $ONLY; do
  case $item in
    dense) step "$OUT/r56-dense.pt" python -m models.train --from "$PARENT" "${FT[@]}" --out "$OUT/r56-dense.pt" ;;
    sparse) step "$OUT/r56-p90.pt" python -m pruning_weight.prune "$PARENT" "${PRUNE[@]}" "${FT[@]}" --out "$OUT/r56-p90.pt" ;;
    kd) step "$OUT/r56-p90-kd.pt" python -m pruning_weight.prune "$PARENT" "${PRUNE[@]}" --teacher "$PARENT" \
          --temperature 4 --alpha 0.9 "${FT[@]}" --out "$OUT/r56-p90-kd.pt" ;;
    report) python -m pruning_weight.report "$OUT/r56-p90.pt" "$OUT/r56-p90-kd.pt" --baseline "$OUT/r56-dense.pt" \
              --out "results/weight_pruning_accuracy_90_from_ft_e$EPOCHS" ;;
    *) echo "weight_prune_90.sh: unknown item '$item' (dense sparse kd report)" >&2; exit 2 ;;
  esac
done
