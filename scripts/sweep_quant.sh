#!/usr/bin/env bash
# Bits table for simulated quantisation: post-training (calibrated, no fine-tune) and QAT top-1.
#   bash scripts/sweep_quant.sh            # writes results/quant_bits.csv and results/quant_bits.md
# ResNet-20: post-training + short QAT (recipe quick: 1 epoch, lr 0.01 cosine, on a 5,000-image subset of the
# JPEG-q75 training copy) for R20_QAT, post-training only for R20_PT, and the fp32 model fine-tuned with the same
# recipe as the fair reference for the QAT column. ResNet-56: post-training rows only (CPU budget).
# Everything is scored on CIFAR-10 test[:1000] (lossless); calibration uses 1,024 training images.
# Environment: CIFAR10_DIR (default ~/.cache/cifar-compress/cifar10), THREADS (default 1), SUBSET (default 5000),
# R20_QAT / R20_PT / R56_PT (space-separated WxAy lists), APPEND=1 keeps existing rows of the CSV.
set -euo pipefail
DATA=${CIFAR10_DIR:-$HOME/.cache/cifar-compress/cifar10}
TEST=$DATA/lossless-test1000
THREADS=${THREADS:-1}
SUBSET=${SUBSET:-5000}
R20_QAT=${R20_QAT-"W8A8 W6A6 W4A8 W4A4 W2A4"}
R20_PT=${R20_PT-"W3A3 W2A2"}
R56_PT=${R56_PT-"W8A8 W6A6 W4A8 W4A4 W2A4"}
OUT=runs/quant/bits
CSV=results/quant_bits.csv
mkdir -p "$OUT" results
[ "${APPEND:-0}" = 1 ] || rm -f "$CSV"
common=(--data-dir "$DATA" --test-dir "$TEST" --threads "$THREADS" --no-progress --results "$CSV")

bits() { local c=${1#W}; w=${c%A*}; a=${c#*A}; }   # W4A8 -> w=4 a=8

for c in $R20_QAT; do
  bits "$c"
  python -m quantization.qat runs/base/r20.pt --weight-bits "$w" --act-bits "$a" --out "$OUT/r20-w${w}a${a}.pt" \
    --recipe quick --subset "$SUBSET" "${common[@]}"
done
for c in $R20_PT; do
  bits "$c"
  python -m quantization.qat runs/base/r20.pt --weight-bits "$w" --act-bits "$a" --out "$OUT/r20-w${w}a${a}-pt.pt" \
    --post-training-only --subset 2000 "${common[@]}"
done
# fp32 reference fine-tuned with the same recipe (the fair comparison for the QAT column)
if [ ! -f "$OUT/r20-fp32-ft.pt" ]; then
  python -m models.train --from runs/base/r20.pt --recipe quick --subset "$SUBSET" --data-dir "$DATA" --test-dir "$TEST" \
    --threads "$THREADS" --no-progress --out "$OUT/r20-fp32-ft.pt"
fi
for c in $R56_PT; do
  bits "$c"
  python -m quantization.qat runs/base/r56.pt --weight-bits "$w" --act-bits "$a" --out "$OUT/r56-w${w}a${a}-pt.pt" \
    --post-training-only --subset 2000 "${common[@]}"
done

python -m quantization.report "$CSV" --fp32-ft "$OUT/r20-fp32-ft.pt" --out results/quant_bits.md
