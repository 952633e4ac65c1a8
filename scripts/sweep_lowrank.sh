#!/usr/bin/env bash
# Low-rank decomposition of ResNet-56: decompose (data-free top-1), fine-tune with the shared loop, tabulate.
#   bash scripts/sweep_lowrank.sh                  # the three schemes at equal MACs (target 0.5, ranks x8)
#   SCHEMES=spatial MULTIPLES=16 TARGETS="0.5 0.6 0.65 0.7" bash scripts/sweep_lowrank.sh   # the speed candidates
# Names: r56-SCHEME-f7-m16.pt = --target-flops 0.7 --multiple 16 (e9 = --energy 0.9); fine-tuned: ...-ft.pt.
# results/lowrank_r56.md = both runs with REPORT=none, then one table over everything:
#   python -m lowrank.report runs/lowrank/r56-{svd,tucker2,spatial}-f5-m8.pt runs/lowrank/r56-spatial-f{5,6,65,7}-m16.pt \
#     --baseline runs/base/r56.pt --baseline-ft runs/base/r56-ft-quick.pt --data-dir $CIFAR10_DIR \
#     --notes results/lowrank_r56_notes.md --out results/lowrank_r56
#   CKPT=runs/base/r56.pt TARGETS="0.5 0.35" SCHEMES="spatial" MULTIPLES="16" bash scripts/sweep_lowrank.sh
#   ENERGIES="0.9 0.95" ...                        # also select ranks by kept energy instead of a MAC target
#   REPORT=none skips the table; FINETUNE=0 only decomposes
# Fine-tune = the standard short CPU recipe (--recipe quick --subset 10000); compare with the baseline
# fine-tuned the same way: python -m models.train --from runs/base/r56.pt --recipe quick --subset 10000 ...
set -euo pipefail
CKPT=${CKPT:-runs/base/r56.pt}
OUT=${OUT:-runs/lowrank}
SCHEMES=${SCHEMES:-"svd spatial tucker2"}
TARGETS=${TARGETS:-"0.5"}
ENERGIES=${ENERGIES:-""}
MULTIPLES=${MULTIPLES:-"8"}
THREADS=${THREADS:-1}
FINETUNE=${FINETUNE:-1}
DATA=${CIFAR10_DIR:-data}
name=$(basename "$CKPT" .pt)
mkdir -p "$OUT"
made=()
for scheme in $SCHEMES; do
  for m in $MULTIPLES; do
    sel=()
    for f in $TARGETS; do sel+=("--target-flops $f:f${f#0.}"); done
    for e in $ENERGIES; do sel+=("--energy $e:e${e#0.}"); done
    for s in "${sel[@]}"; do
      flag=${s%%:*}; tag=${s##*:}
      dst="$OUT/$name-$scheme-$tag-m$m.pt"
      # A target a scheme cannot reach with this rounding is reported and skipped, not fatal.
      if python -m lowrank.decompose "$CKPT" --scheme "$scheme" $flag --multiple "$m" --data-dir "$DATA" \
           --threads "$THREADS" --out "$dst" > "${dst%.pt}.log" 2>&1; then
        tail -2 "${dst%.pt}.log" | head -1
        made+=("$dst")
        if [ "$FINETUNE" = 1 ]; then
          python -m models.train --from "$dst" --recipe quick --subset 10000 --threads "$THREADS" --no-progress \
            --out "${dst%.pt}-ft.pt" > "${dst%.pt}-ft.log" 2>&1
          tail -1 "${dst%.pt}-ft.log"
        fi
      else
        echo "skipped $scheme $flag --multiple $m: $(tail -1 "${dst%.pt}.log")"
      fi
    done
  done
done
[ "${REPORT:-}" = none ] || python -m lowrank.report "${made[@]}" --baseline "$CKPT" --baseline-ft "${BASELINE_FT:-runs/base/r56-ft-quick.pt}" \
  --out "${REPORT:-results/lowrank_r56}"
