#!/usr/bin/env bash
# Seed repeats of the headline 2-epoch comparisons: every item of scripts/equal_finetune.sh that a headline claim rests
# on, once per seed (seed 0 in runs/ft-e2, seed S in runs/ft-e2-sS), each seed measured in one benchmark run against
# its own baseline, then the tables of mean +- sd with paired 95% intervals (python -m plots.seeds).
#   bash scripts/seeds.sh                      # seeds 0 1 2, ~1.5 h of training per seed on this 2-core CPU
#   SEEDS="1 2" UNTIL=train bash scripts/seeds.sh &    # train now in the background; --resume picks up a killed run
#   PARALLEL=1 THREADS=1 UNTIL=train bash scripts/seeds.sh   # on a GPU: every seed, and each seed's independent
#                                              # items, in processes side by side (int8 after its seed's models)
# Env: SEEDS, EPOCHS (default 2), ITEMS (default below), UNTIL=train (stop before the benchmark), PARALLEL=1 (above),
# RESULTS (folder of benchmark_e2_seeds.csv and seeds_e2.md; default runs/seeds/results, PUBLISH=1: results/), THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # DATA, THREADS, step, results_dir
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-2}
ITEMS=${ITEMS:-base l1b l1r16 lowrank w90kd kd kd32 nt nt32 fitnets int8}
seed_dir() {  # seed_dir SEED: the folder of one seed's models
  echo "runs/ft-e$EPOCHS$([ "$1" = 0 ] || echo "-s$1")"
}
run_items() {  # run_items SEED "ITEMS" TAG: equal_finetune.sh's items for one seed, each output line tagged [TAG]
  # OUT is set here, never inherited: an OUT in the caller's environment would send every seed to one folder.
  SEED=$1 ONLY=$2 OUT=$(seed_dir "$1") bash scripts/equal_finetune.sh "$EPOCHS" 2>&1 | sed -u "s/^/[$3] /"
}
wait_all() {  # wait_all PID...: wait for every job, fail if any failed (a bare `wait` forgets their exit codes)
  local failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return $failed
}
train_seed() {  # train_seed SEED: its items in order, or with PARALLEL=1 its independent chains side by side
  local s=$1 students="" others="" pids=()
  if [ "${PARALLEL:-}" != 1 ]; then run_items "$s" "$ITEMS" "seed $s"; return; fi
  for item in $ITEMS; do
    case $item in
      base|int8) ;;
      kd|kd32|nt|nt32|fitnets) students+=" $item" ;;  # they learn from item base's fine-tuned ResNet-56
      *) others+=" $item" ;;
    esac
  done
  (
    if [[ " $ITEMS " == *" base "* ]]; then run_items "$s" base "seed $s base"; fi
    student_pids=()
    for item in $students; do run_items "$s" "$item" "seed $s $item" & student_pids+=($!); done
    wait_all "${student_pids[@]}"
  ) & pids+=($!)
  for item in $others; do run_items "$s" "$item" "seed $s $item" & pids+=($!); done
  wait_all "${pids[@]}"
  if [[ " $ITEMS " == *" int8 "* ]]; then run_items "$s" int8 "seed $s int8"; fi  # quantises base, kd, kd32 and lowrank
}
if [ "${PARALLEL:-}" = 1 ]; then  # a GPU runs these small models launch-bound: many processes keep it busy
  pids=()
  for s in $SEEDS; do train_seed "$s" & pids+=($!); done
  wait_all "${pids[@]}"
else
  for s in $SEEDS; do echo "== seed $s"; train_seed "$s"; done
fi
[ "${UNTIL:-}" = train ] && { echo "seeds.sh: trained seeds $SEEDS; stopping before the benchmark (UNTIL=train)"; exit 0; }
RESULTS=${RESULTS:-$(results_dir runs/seeds)}; no_dash RESULTS
mkdir -p "$RESULTS"
for s in $SEEDS; do
  dir=$(seed_dir "$s")
  ckpts=$(ls "$dir"/*.pt | grep -v -e '/r32.pt$' -e '-B.pt$' -e 'r16.pt$' -e 'm16.pt$')  # not the unfinetuned inputs
  # shellcheck disable=SC2086
  python -m benchmark.run $ckpts --baseline "$dir/r56-ft.pt" --test-dir "$DATA" --threads "$THREADS" \
    --backends onnx,openvino --batch-sizes 1,64 --repeat 3 --slices 8 --min-seconds 1 --skip-measured --no-progress \
    --out "$RESULTS/benchmark_e${EPOCHS}_seeds.csv"
done
python -m plots.seeds --results "$RESULTS/benchmark_e${EPOCHS}_seeds.csv" --out "$RESULTS/seeds_e$EPOCHS.md" \
  --title "Seed repeats of the $EPOCHS-epoch comparisons"
