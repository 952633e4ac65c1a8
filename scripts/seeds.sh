#!/usr/bin/env bash
# Seed repeats of the headline 2-epoch comparisons: every item of scripts/equal_finetune.sh that a headline claim rests
# on, once per seed (seed 0 in runs/ft-e2, seed S in runs/ft-e2-sS), each seed measured in one benchmark run against
# its own baseline, then the tables of mean +- sd with paired 95% intervals (python -m plots.seeds).
#   bash scripts/seeds.sh                      # seeds 0 1 2, ~1.5 h of training per seed on this 2-core CPU
#   SEEDS="1 2" UNTIL=train bash scripts/seeds.sh &    # train now in the background; --resume picks up a killed run
# Env: SEEDS, EPOCHS (default 2), ITEMS (default below), UNTIL=train (stop before the benchmark), RESULTS (folder of
# benchmark_e2_seeds.csv and seeds_e2.md; default runs/seeds/results, PUBLISH=1: results/), THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # DATA, THREADS, step, results_dir
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-2}
ITEMS=${ITEMS:-base l1b l1r16 lowrank w90kd kd kd32 nt nt32 fitnets int8}
for s in $SEEDS; do
  echo "== seed $s"
  SEED=$s ONLY="$ITEMS" bash scripts/equal_finetune.sh "$EPOCHS"
done
[ "${UNTIL:-}" = train ] && { echo "seeds.sh: trained seeds $SEEDS; stopping before the benchmark (UNTIL=train)"; exit 0; }
RESULTS=${RESULTS:-$(results_dir runs/seeds)}
mkdir -p "$RESULTS"
for s in $SEEDS; do
  dir=runs/ft-e$EPOCHS$([ "$s" = 0 ] || echo "-s$s")
  ckpts=$(ls "$dir"/*.pt | grep -v -e '/r32.pt$' -e '-B.pt$' -e 'r16.pt$' -e 'm16.pt$')  # not the unfinetuned inputs
  # shellcheck disable=SC2086
  python -m benchmark.run $ckpts --baseline "$dir/r56-ft.pt" --test-dir "$DATA" --threads "$THREADS" \
    --backends onnx,openvino --batch-sizes 1,64 --repeat 3 --slices 8 --min-seconds 1 --skip-measured --no-progress \
    --out "$RESULTS/benchmark_e${EPOCHS}_seeds.csv"
done
python -m plots.seeds --results "$RESULTS/benchmark_e${EPOCHS}_seeds.csv" --out "$RESULTS/seeds_e$EPOCHS.md" \
  --title "Seed repeats of the $EPOCHS-epoch comparisons"
