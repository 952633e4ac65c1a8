#!/usr/bin/env bash
# L1 filter pruning sweep over uniform prune ratios: prune, report top-1 right after pruning, fine-tune.
#
#   scripts/sweep_l1.sh [CKPT] [OUTDIR] [RATIOS] [-- extra fine-tune args]
#   scripts/sweep_l1.sh runs/base/r56.pt runs/l1/sweep "0.1 0.3 0.5 0.7" -- --recipe quick --subset 10000 --threads 1
#
# Env: ROUND_TO=8 rounds kept widths to multiples of 8; SKIP=16,20 leaves those layer ids unpruned;
#      EVAL_SUBSET=N scores top-1 after pruning on N test images; CIFAR10_DIR = data root (default ~/.cache/cifar-compress/cifar10).
# Writes OUTDIR/u<ratio>[r<N>].pt (pruned) and ...-ft.pt (fine-tuned), and OUTDIR/summary.csv.
set -euo pipefail
CKPT=${1:-runs/base/r56.pt}
OUTDIR=${2:-runs/l1/sweep}
RATIOS=${3:-"0.1 0.2 0.3 0.4 0.5 0.6 0.7"}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
FT_ARGS=("$@")
[ ${#FT_ARGS[@]} -eq 0 ] && FT_ARGS=(--recipe quick --subset 10000 --threads 1)
DATA=${CIFAR10_DIR:-$HOME/.cache/cifar-compress/cifar10}
mkdir -p "$OUTDIR"
echo "ratio,round_to,pruned,finetuned" > "$OUTDIR/summary.csv"
for r in $RATIOS; do
  name="u${r}${ROUND_TO:+r$ROUND_TO}"
  python -m pruning_l1.prune "$CKPT" --ratio "$r" ${SKIP:+--skip "$SKIP"} ${ROUND_TO:+--round-to "$ROUND_TO"} \
    ${EVAL_SUBSET:+--test-subset "$EVAL_SUBSET"} --data-dir "$DATA" --threads 1 --out "$OUTDIR/$name.pt"
  python -m pruning_l1.finetune "$OUTDIR/$name.pt" --data-dir "$DATA" --no-progress "${FT_ARGS[@]}" \
    --out "$OUTDIR/$name-ft.pt"
  echo "$r,${ROUND_TO:-},$OUTDIR/$name.pt,$OUTDIR/$name-ft.pt" >> "$OUTDIR/summary.csv"
done
# Size, cost and top-1 (as recorded in each checkpoint's meta, with its data label) for every checkpoint.
python - "$OUTDIR" <<'PY'
import glob, sys
from common.checkpoint import load_checkpoint
rows = ["checkpoint,macs,params,top1,data"]
for f in sorted(glob.glob(sys.argv[1] + "/*.pt")):
    m = load_checkpoint(f)["meta"]
    rows.append(f"{f},{m['metrics']['macs']:.0f},{m['metrics']['params']},{m['metrics'].get('top1', '')},\"{m['data']}\"")
open(sys.argv[1] + "/metrics.csv", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
echo "wrote $OUTDIR/summary.csv and $OUTDIR/metrics.csv"
