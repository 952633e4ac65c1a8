#!/usr/bin/env bash
# The second teacher: a ResNet-110 trained from scratch on the JPEG-copy training set (no published weights reach
# these machines), then what the study does with it: KD ResNet-110 -> ResNet-20 beside ResNet-56 -> ResNet-20 (the
# same student schedule), and Li et al.'s ResNet-110-A / -B pruned from it and fine-tuned with the budget of the
# ResNet-110's own fine-tune. Benchmarked against that fine-tuned ResNet-110.
#   bash scripts/teacher110.sh                 # CPU: 30 cosine epochs, bf16 autocast where the CPU has native bf16
#   EPOCHS=14 PUBLISH=1 bash scripts/teacher110.sh   # the committed run (results/r110/summary.md, docs/results.md)
#   EPOCHS=60 bash scripts/teacher110.sh      # on a GPU machine (DEVICE=auto picks CUDA)
# Every step resumes a killed run (--resume from its run folder), so the 30 epochs may span several sessions on one
# machine: ResNet-110 trains at ~230 img/s in bf16 on the 2-core AMX Xeon (~130 in fp32), ~4 min an epoch, so 30
# epochs take ~2 h and the bf16 fine-tunes, fp32 KD and benchmark after them ~35 min more. Env: EPOCHS, FT_EPOCHS
# (fine-tune budget, default 2), OUT (default runs/r110), QUICK (runs/study-quick: the published ResNet-20),
# DEVICE, THREADS, UNTIL=train, RESULTS (default OUT/results; PUBLISH=1: results/), IMGS (default OUT/imgs;
# PUBLISH=1: imgs/r110).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # DATA, THREADS, step, need, results_dir
EPOCHS=${EPOCHS:-30}
FT_EPOCHS=${FT_EPOCHS:-2}
OUT=${OUT:-runs/r110}; no_dash OUT
QUICK=${QUICK:-runs/study-quick}
DEVICE=${DEVICE:-auto}  # a CUDA GPU when there is one
need "$QUICK/base/r20.pt"
mkdir -p "$OUT"
RUN=(--data-dir "$DATA" --threads "$THREADS" --device "$DEVICE" --no-progress)
# bf16 autocast on a CPU with native bf16 (a GPU autocasts anyway and ignores the flag)
BF16=$(python -c 'from common.machine import cpu_has_native_bf16 as b; print("--cpu-bf16" if b() else "")')
# He et al.'s lr 0.1, batch 128, wd 1e-4 and their ResNet-110 start (lr/10 for the first 400 iterations: at 0.1 a
# 110-layer post-activation ResNet learns almost nothing in its first epochs, 46% test top-1 after 3 of them here),
# with a cosine schedule that fits a short run; 30 epochs is a CPU budget (He et al. train 164): docs/results.md
# states how far it got.
# shellcheck disable=SC2086
step "$OUT/r110.pt" python -m train resnet110 --recipe scratch --epochs "$EPOCHS" --schedule cosine \
  --warmup-steps 400 $BF16 "${RUN[@]}" --out "$OUT/r110.pt"
FT=(--recipe quick --epochs "$FT_EPOCHS" "${RUN[@]}")
# The ResNet-110's own fine-tune and its pruned models' share one budget and precision: bf16 like its training
# (1.8x faster here); what they are compared with is each other, not the fp32 ResNet-56 set.
# shellcheck disable=SC2086
step "$OUT/r110-ft.pt" python -m train "$OUT/r110.pt" "${FT[@]}" $BF16 --out "$OUT/r110-ft.pt"
for v in A B; do
  step "$OUT/r110-$v.pt" python -m pruning_l1.prune "$OUT/r110.pt" --variant $v --out "$OUT/r110-$v.pt"
  # shellcheck disable=SC2086
  step "$OUT/r110-$v-ft.pt" python -m train "$OUT/r110-$v.pt" "${FT[@]}" $BF16 \
    --baseline "$OUT/r110-ft.pt" --out "$OUT/r110-$v-ft.pt"
done
# KD into the published ResNet-20 from each teacher, the student schedule of scripts/equal_finetune.sh's item kd
# (fp32, as that item is), so the two teachers' students differ only in their teacher.
step "$OUT/r20-kd-r110.pt" python -m distillation.train "$QUICK/base/r20.pt" --teacher "$OUT/r110-ft.pt" \
  --temperature 4 --alpha 0.5 "${FT[@]}" --out "$OUT/r20-kd-r110.pt"
[ "${UNTIL:-}" = train ] && { echo "teacher110.sh: trained; stopping before the benchmark (UNTIL=train)"; exit 0; }
RESULTS=${RESULTS:-$(results_dir "$OUT")}
mkdir -p "$RESULTS"
python -m benchmark.run "$OUT/r110-ft.pt" "$OUT"/r110-{A,B}-ft.pt "$OUT/r20-kd-r110.pt" --baseline "$OUT/r110-ft.pt" \
  --test-dir "$DATA" --threads "$THREADS" --backends eager,onnx,openvino --batch-sizes 1,64 --repeat 3 --slices 8 \
  --min-seconds 1 --skip-measured --no-progress --out "$RESULTS/benchmark_r110.csv"
python -m pruning_l1.accuracy_table "$OUT"/r110-{A,B}.pt "$OUT"/r110-{A,B}-ft.pt --baseline "$OUT/r110-ft.pt" \
  --out "$RESULTS/reports/l1_accuracy_r110.md" >/dev/null
python -m plots.summary --results "$RESULTS/benchmark_r110.csv" --out "$RESULTS/summary_r110.md" \
  --title "ResNet-110 teacher: Li et al. 110-A/B and KD into ResNet-20"
IMGS=${IMGS:-$([ "${PUBLISH:-}" = 1 ] && echo imgs/r110 || echo "$OUT/imgs")}; no_dash RESULTS IMGS
python -m plots.make --results "$RESULTS/benchmark_r110.csv" --out "$IMGS"
echo "teacher110.sh done: $RESULTS/summary_r110.md, figures in $IMGS/"
