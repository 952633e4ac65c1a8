#!/usr/bin/env bash
# The accuracy cost against the training budget: the equal fine-tune (scripts/equal_finetune.sh: every model, the
# baseline included, the same recipe from the same starting points) at each budget in BUDGETS, the int8 models of
# each budget's checkpoints, then the table and figure across budgets.
#
#   bash scripts/budget.sh                     # train: BUDGETS="8 32" (8 epochs: every configuration; 32: the set below)
#   BUDGETS=8 SEED=1 bash scripts/budget.sh    # another seed (runs/ft-e8-s1)
#   STAGE=bench BUDGETS=8 PUBLISH=1 bash scripts/budget.sh   # benchmark a budget's models on a quiet machine, its
#                          # summary and figures, then results/budget.csv and imgs/budget/ across every budget measured
#
# Protocol (one for every method and budget, the 1- and 2-epoch studies' recipe with only the epochs changed):
# SGD lr 0.01, momentum 0.9, cosine to zero, wd 1e-4, batch 128, all 50,000 JPEG-copy training images. Li et al.
# retrain at a constant lr 0.001 for 40 epochs (rethinking-network-pruning's main_finetune.py: the same), but their
# parents already fit the data; ours start from weights trained on the lossless CIFAR-10 (the ResNet-56: 92.6 on the
# lossless test[:1000], 83.2 on the JPEG-copy test), and the 2-epoch runs show lr 0.01 recovering most of that. Changing only the epochs makes each point of the
# curve differ from its neighbours by the budget alone. bf16 autocast on a CPU with native bf16 (recorded per
# checkpoint); each checkpoint records its training seconds (metrics.train_seconds).
#
# On 2 cores the items run as two queues side by side, one thread each (two single-thread processes train more images
# per second in all than one two-thread process on these small models). Every output is skipped when it exists and a
# killed run resumes from its run folder, so the script can be started again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BUDGETS=${BUDGETS:-8 32}
SEED=${SEED:-0}
for e in $BUDGETS; do  # checked before any queue starts in the background
  [[ $e =~ ^[1-9][0-9]{0,3}$ ]] || { echo "budget.sh: BUDGETS must be epoch counts (1..9999), got '$e'" >&2; exit 2; }
done
[[ $SEED =~ ^[0-9]{1,9}$ ]] || { echo "budget.sh: SEED must be a non-negative integer, got '$SEED'" >&2; exit 2; }
[ -n "${BUDGETS// }" ] || { echo "budget.sh: BUDGETS is empty" >&2; exit 2; }
BF16=$(python -c 'from common.machine import cpu_has_native_bf16 as b; print(1 if b() else "")')
ft_dir() { echo "runs/ft-e$1$([ "$SEED" = 0 ] || echo "-s$SEED")"; }

# Queue A holds the teacher and what needs it; queue B the methods that start from the published ResNet-56; each
# ends with the int8 models (ONNX Runtime, OpenVINO) of its own checkpoints. Measured here (1 thread each, bf16, AMX
# Xeon: ~190 s per ResNet-56 epoch) the two queues take about the same time without w90kd, the costliest item (a
# ResNet-56 plus its teacher's forward pass), which comes last. At 32 epochs the no-teacher ResNet-20 goes to queue A:
# with the epochs measured at 8 (ResNet-56 190 s, B 177, x16 L1 157, low-rank 230, r20 KD 112, r32 KD 142, r20 77)
# the queues take 4.6 h and 5.0 h instead of 3.9 h and 5.7 h.
queues() {  # queues EPOCHS: "A-items|B-items"
  case $1 in
    32) echo "base kd kd32 nt|l1b l1r16 lowrank" ;;
    *) echo "base kd kd32 fitnets nt w90kd|l1b l1r16 lowrank fisher72 nt32 tp" ;;
  esac
}
checkpoints() {  # checkpoints ITEM...: the fine-tuned checkpoint names (in OUT, without .pt) the items make
  for item in "$@"; do
    case $item in
      base) echo -n "r56-ft " ;; l1b) echo -n "r56-B-ft " ;; l1r16) echo -n "r56-s0-50-75r16-ft " ;;
      fisher72) echo -n "r56-fisher72 " ;; lowrank) echo -n "r56-spatial-f65-m16-ft " ;; w90kd) echo -n "r56-p90-kd " ;;
      kd) echo -n "r20-kd " ;; kd32) echo -n "r32-kd " ;; nt) echo -n "r20-noteacher " ;; nt32) echo -n "r32-noteacher " ;;
      fitnets) echo -n "r20-fitnet " ;; tp) echo -n "r56-tp-ft " ;;
    esac
  done
}
queue() {  # queue EPOCHS ITEMS: the items, then the int8 models of what they made, one thread
  CPU_BF16=$BF16 THREADS=1 SEED=$SEED OUT=$(ft_dir "$1") ONLY="$2 int8" INT8="$(checkpoints $2)" \
    bash scripts/equal_finetune.sh "$1"
}

if [ "${STAGE:-train}" = bench ]; then
  RESULTS=$(results_dir runs/budget); IMGS=$([ "${PUBLISH:-}" = 1 ] && echo imgs || echo runs/budget/imgs)
  mkdir -p "$RESULTS" "$IMGS"
  for e in $BUDGETS; do
    E=$(ft_dir "$e"); tag=e$e$([ "$SEED" = 0 ] || echo "-s$SEED"); CSV=$RESULTS/benchmark_$tag.csv
    need "$E/r56-ft.pt"
    models=(); for m in $(checkpoints base kd kd32 fitnets w90kd l1b l1r16 lowrank fisher72 nt32 nt tp); do
      for f in "$E/$m.pt" "$E/$m-int8-onnxruntime.pt" "$E/$m-int8-openvino.pt"; do [ -f "$f" ] && models+=("$f"); done
    done
    # Torch-Pruning's own ONNX export, as its users would measure it (not fine-tuned: docs/measure-your-model.md)
    [ -f "$E/r56-tp.onnx" ] && models+=("$E/r56-tp.onnx")
    # ONNX Runtime and OpenVINO for every model, eager PyTorch for the baseline only (the "x eager fp32" reference),
    # all in one run so that the reference is interleaved with the rows it divides: 3 repeats of 8 slices, batch 1
    # and 64, every core.
    python -m benchmark.run "${models[@]}" --backends onnx,openvino --baseline-backends eager --label torch-pruning \
      --baseline "$E/r56-ft.pt" --test-dir "$DATA" --threads "$THREADS" --batch-sizes 1,64 --repeat 3 --slices 8 \
      --min-seconds 1 --skip-measured --no-progress "${QUIET[@]}" --out "$CSV"
    python -m plots.make --results "$CSV" --out "$IMGS/$tag"
    python -m plots.summary --results "$CSV" --out "$RESULTS/summary_$tag.md" --title "$e-epoch equal fine-tune (seed $SEED)"
  done
  # The curve across budgets: the quick study (1 epoch on 10,000 images = 0.2), the 2-epoch set over 3 seeds (Fisher:
  # its own 2-epoch run), and every budget benchmarked here.
  runs=(--run 0.2=results/benchmark.csv --run 2=results/benchmark_e2_seeds.csv --run 2=results/benchmark_fisher_e2.csv)
  for f in "$RESULTS"/benchmark_e8*.csv "$RESULTS"/benchmark_e32*.csv; do
    [ -f "$f" ] && runs+=(--run "$(basename "$f" | sed -E 's/benchmark_e([0-9]+).*/\1/')=$f")
  done
  python -m plots.budget "${runs[@]}" --out "$RESULTS/budget.csv" --imgs "$IMGS/budget"
  busy_warning "$RESULTS/summary_$tag.md"
  exit 0
fi

ONLY=weights OUT=$(ft_dir "${BUDGETS%% *}") bash scripts/equal_finetune.sh 1  # the published weights, before the queues
for e in $BUDGETS; do
  IFS='|' read -r qa qb <<< "$(queues "$e")"
  echo "[budget] $e epochs, seed $SEED: queue A ($qa) and queue B ($qb) side by side"
  queue "$e" "$qa" &
  a=$!
  queue "$e" "$qb"
  wait $a
done
