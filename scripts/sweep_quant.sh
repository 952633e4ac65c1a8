#!/usr/bin/env bash
# Bits table of simulated quantisation: post-training (calibrated, no fine-tune) and QAT top-1.
#   bash scripts/sweep_quant.sh              # after scripts/main.sh
# ResNet-20: post-training + short QAT (recipe quick: 1 epoch, lr 0.01 cosine, on SUBSET JPEG-copy training images)
# for R20_QAT, post-training only for R20_PT, and the fp32 ResNet-20 fine-tuned with the same recipe as the fair
# reference of the QAT column. ResNet-56: post-training rows only (CPU budget). Scored on CIFAR-10 test[:1000]
# (lossless); calibration on the shared --calib-images default. Env: SUBSET (default 5000), R20_QAT / R20_PT / R56_PT
# (space-separated WxAy lists), OUT (default runs/sweep-quant), PUBLISH=1 (table into results/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need "$BASE/r20.pt" "$BASE/r56.pt"
TEST=$DATA/lossless-test1000
SUBSET=${SUBSET:-5000}
R20_QAT=${R20_QAT-"W8A8 W6A6 W4A8 W4A4 W2A4"}
R20_PT=${R20_PT-"W3A3 W2A2"}
R56_PT=${R56_PT-"W8A8 W6A6 W4A8 W4A4 W2A4"}
OUT=${OUT:-runs/sweep-quant}; no_dash OUT
common=(--data-dir "$DATA" --test-dir "$TEST" --threads "$THREADS" --no-progress)
mkdir -p "$OUT"
made=()
qat() {  # qat MODEL WxAy OUT [args]: one simulated-quantisation checkpoint
  local src=$1 c=${2#W} out=$3; shift 3
  step "$out" python -m quantization.qat "$src" --weight-bits "${c%A*}" --act-bits "${c#*A}" "$@" "${common[@]}" \
    --out "$out"
  made+=("$out")
}
for c in $R20_QAT; do qat "$BASE/r20.pt" "$c" "$OUT/r20-${c,,}.pt" --finetune --recipe quick --subset "$SUBSET"; done
for c in $R20_PT; do qat "$BASE/r20.pt" "$c" "$OUT/r20-${c,,}-pt.pt"; done
for c in $R56_PT; do qat "$BASE/r56.pt" "$c" "$OUT/r56-${c,,}-pt.pt"; done
step "$OUT/r20-fp32-ft.pt" python -m train "$BASE/r20.pt" --recipe quick --subset "$SUBSET" "${common[@]}" \
  --out "$OUT/r20-fp32-ft.pt"
python -m quantization.report "${made[@]}" --baseline "$OUT/r20-fp32-ft.pt" --out "$(results_dir "$OUT")/quant_bits"
