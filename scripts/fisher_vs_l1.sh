#!/usr/bin/env bash
# Fisher pruning against L1 filter pruning with the same fine-tune budget: the E-epoch equal fine-tune of
# scripts/equal_finetune.sh (default 2) for the baseline, Li et al.'s ResNet-56-B and the uniform 50% scheme, and
# Fisher pruning at their MAC cuts (and at B's with widths x16), then one benchmark run on every runtime against
# that baseline and the table (python -m pruning_fisher.report).
#   bash scripts/fisher_vs_l1.sh                 # ~1 h of training on this 2-core CPU, then ~20 min of benchmark
#   UNTIL=train THREADS=1 ONLY="base l1b l1u50" bash scripts/fisher_vs_l1.sh &   # two training queues side by side,
#   UNTIL=train THREADS=1 ONLY="fisher72 fisher50 fisher72r16" bash scripts/fisher_vs_l1.sh   # then once without ONLY
# Env: EPOCHS (default 2), ONLY (items to train; default all six), UNTIL=train, RESULTS (default runs/ft-eE/results;
# PUBLISH=1: results/), IMGS (default RESULTS/../imgs; PUBLISH=1: imgs/fisher_eE), THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # DATA, THREADS, results_dir
EPOCHS=${EPOCHS:-2}
E=runs/ft-e$EPOCHS
ONLY=${ONLY:-base l1b l1u50 fisher72 fisher50 fisher72r16} bash scripts/equal_finetune.sh "$EPOCHS"
[ "${UNTIL:-}" = train ] && { echo "fisher_vs_l1.sh: trained; stopping before the benchmark (UNTIL=train)"; exit 0; }
RESULTS=${RESULTS:-$(results_dir "$E")}
IMGS=${IMGS:-$([ "${PUBLISH:-}" = 1 ] && echo imgs/fisher_e$EPOCHS || echo "$E/imgs")}; no_dash RESULTS IMGS
mkdir -p "$RESULTS/reports" "$IMGS"
MODELS=("$E"/{r56-ft,r56-B-ft,r56-u50r8-ft,r56-fisher72,r56-fisher50,r56-fisher72r16}.pt)
python -m benchmark.run "${MODELS[@]}" --baseline "$E/r56-ft.pt" --test-dir "$DATA" --threads "$THREADS" \
  --backends eager,compile,onnx,openvino --batch-sizes 1,64 --repeat 3 --slices 8 --min-seconds 1 --skip-measured \
  --no-progress --out "$RESULTS/benchmark_fisher_e$EPOCHS.csv"
python -m plots.make --results "$RESULTS/benchmark_fisher_e$EPOCHS.csv" --out "$IMGS"
python -m plots.summary --results "$RESULTS/benchmark_fisher_e$EPOCHS.csv" --out "$RESULTS/summary_fisher_e$EPOCHS.md" \
  --title "Fisher vs L1 pruning, $EPOCHS-epoch equal fine-tune"
python -m pruning_fisher.report "${MODELS[@]:1}" --baseline "$E/r56-ft.pt" --benchmark "$RESULTS/benchmark_fisher_e$EPOCHS.csv" \
  --out "$RESULTS/reports/fisher_vs_l1_e$EPOCHS" >/dev/null
echo "fisher_vs_l1.sh done: $RESULTS/reports/fisher_vs_l1_e$EPOCHS.md"
