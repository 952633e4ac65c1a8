#!/usr/bin/env bash
# L1 filter pruning over uniform prune ratios: prune (top-1 right after pruning), fine-tune with the quick recipe,
# then the table against the equally fine-tuned baseline.
#   bash scripts/sweep_l1.sh                                   # after scripts/main.sh: ratios 0.1 ... 0.7
#   RATIOS="0.3 0.5" ROUND_TO=8 bash scripts/sweep_l1.sh       # kept widths rounded to multiples of 8
# Env: RATIOS, ROUND_TO, SKIP (layer ids left unpruned), OUT (default runs/sweep-l1), PUBLISH=1 (table into results/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need "$BASE/r56.pt" "$BASE/r56-ft.pt"
OUT=${OUT:-runs/sweep-l1}; no_dash OUT
RATIOS=${RATIOS:-"0.1 0.2 0.3 0.4 0.5 0.6 0.7"}
mkdir -p "$OUT"
made=()
for r in $RATIOS; do
  name=u${r}${ROUND_TO:+r$ROUND_TO}
  step "$OUT/$name.pt" python -m pruning_l1.prune "$BASE/r56.pt" --ratio "$r" ${SKIP:+--skip "$SKIP"} \
    ${ROUND_TO:+--round-to "$ROUND_TO"} --test-dir "$DATA" --threads "$THREADS" --out "$OUT/$name.pt"
  step "$OUT/$name-ft.pt" python -m train "$OUT/$name.pt" "${QUICK_FT[@]}" --data-dir "$DATA" \
    --threads "$THREADS" --no-progress --out "$OUT/$name-ft.pt"
  made+=("$OUT/$name.pt" "$OUT/$name-ft.pt")
done
python -m pruning_l1.accuracy_table "${made[@]}" --baseline "$BASE/r56-ft.pt" --out "$(results_dir "$OUT")/l1_sweep.md"
