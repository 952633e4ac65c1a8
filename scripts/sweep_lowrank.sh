#!/usr/bin/env bash
# Low-rank decomposition of the published ResNet-56: decompose (data-free top-1), fine-tune with the quick recipe,
# then the table against the equally fine-tuned baseline.
#   bash scripts/sweep_lowrank.sh                                              # three schemes, 50% MACs, ranks x8
#   SCHEMES=spatial MULTIPLES=16 TARGETS="0.5 0.6 0.65 0.7" bash scripts/sweep_lowrank.sh   # speed candidates
# Names: r56-SCHEME-f7-m16.pt = --target-flops 0.7 --multiple 16; fine-tuned: ...-ft.pt. A target a scheme cannot
# reach with that rounding is reported and skipped. Env: SCHEMES, TARGETS, MULTIPLES, OUT (default
# runs/sweep-lowrank), NOTES (markdown appended to the table), PUBLISH=1 (table into results/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need "$BASE/r56.pt" "$BASE/r56-ft.pt"
OUT=${OUT:-runs/sweep-lowrank}; no_dash OUT
SCHEMES=${SCHEMES:-"svd spatial tucker2"}
TARGETS=${TARGETS:-"0.5"}
MULTIPLES=${MULTIPLES:-"8"}
mkdir -p "$OUT"
made=()
for scheme in $SCHEMES; do
  for m in $MULTIPLES; do
    for f in $TARGETS; do
      dst=$OUT/r56-$scheme-f${f#0.}-m$m.pt
      if ! step "$dst" python -m lowrank.decompose "$BASE/r56.pt" --scheme "$scheme" --target-flops "$f" --multiple "$m" \
          --test-dir "$DATA" --threads "$THREADS" --out "$dst" > "${dst%.pt}.log" 2>&1; then
        echo "skipped $scheme --target-flops $f --multiple $m: $(tail -1 "${dst%.pt}.log")"; continue
      fi
      step "${dst%.pt}-ft.pt" python -m train "$dst" "${QUICK_FT[@]}" --data-dir "$DATA" --threads "$THREADS" \
        --no-progress --out "${dst%.pt}-ft.pt"
      made+=("$dst" "${dst%.pt}-ft.pt")
    done
  done
done
python -m lowrank.report "${made[@]}" --baseline "$BASE/r56-ft.pt" ${NOTES:+--notes "$NOTES"} \
  --out "$(results_dir "$OUT")/lowrank_r56"
