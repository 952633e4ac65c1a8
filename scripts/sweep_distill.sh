#!/usr/bin/env bash
# Knowledge distillation and FitNets over students and temperatures, each beside a no-teacher twin trained with the
# same seed, initialisation, epochs and schedule, then the table.
#   bash scripts/sweep_distill.sh                                  # after scripts/main.sh: students from scratch
#   STUDENTS=runs/study-quick/base/r20.pt TEMPS=4 ALPHA=0.5 EPOCHS=2 FITNETS=0 bash scripts/sweep_distill.sh
# Env: TEACHER (default BASE/r56-ft.pt), STUDENTS (architecture names or checkpoints), TEMPS, FITNET_T (stage-2 KD
# temperature of two-stage FitNets), ALPHA, SUBSET, EPOCHS, LR, BATCH, SEED, FITNETS=0 (KD only) or FITNETS=2
# (two-stage FitNets only), CPU_BF16=1 (bf16 autocast, ~1.6-1.9x faster training on an AMX or AVX512-BF16 CPU),
# OUT (default runs/sweep-distill, runs/sweep-distill-sS for SEED S > 0), PUBLISH=1 (table into results/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
TEACHER=${TEACHER:-$BASE/r56-ft.pt}
need "$TEACHER"
STUDENTS=${STUDENTS:-resnet20 resnet10 resnet1}
TEMPS=${TEMPS:-1 2 4}
FITNET_T=${FITNET_T:-2}
ALPHA=${ALPHA:-0.9}
SUBSET=${SUBSET:-10000}
EPOCHS=${EPOCHS:-1}
FITNETS=${FITNETS:-1}
SEED=${SEED:-0}
OUT=${OUT:-runs/sweep-distill$([ "$SEED" = 0 ] || echo "-s$SEED")}; no_dash OUT  # seed repeats: same names, one folder per seed
# a short CPU schedule: one cosine epoch over 10,000 images, wd 5e-4 as in the KD-Zoo students
SCHED=(--data-dir "$DATA" --subset "$SUBSET" --epochs "$EPOCHS" --lr "${LR:-0.05}" --batch-size "${BATCH:-64}"
       --schedule cosine --weight-decay 5e-4 --seed "$SEED" --threads "$THREADS" --no-progress)
[ "${CPU_BF16:-}" = 1 ] && SCHED+=(--cpu-bf16)
mkdir -p "$OUT"
tag=s$SUBSET-e$EPOCHS
made=()
for student in $STUDENTS; do
  if [ -f "$student" ]; then s=$(basename "$student" .pt)pub; else s=r${student#resnet}; fi
  step "$OUT/$s-noteacher-$tag.pt" python -m distillation.train "$student" --teacher "$TEACHER" --no-teacher \
    "${SCHED[@]}" --out "$OUT/$s-noteacher-$tag.pt"
  made+=("$OUT/$s-noteacher-$tag.pt")
  for T in $TEMPS; do
    kd=$OUT/$s-kd-T$T$([ "$ALPHA" = 0.9 ] || echo "-a$ALPHA")-$tag.pt
    step "$kd" python -m distillation.train "$student" --teacher "$TEACHER" --temperature "$T" --alpha "$ALPHA" \
      "${SCHED[@]}" --out "$kd"
    made+=("$kd")
  done
  if [ "$FITNETS" != 0 ]; then
    step "$OUT/$s-fitnet-T$FITNET_T-$tag.pt" python -m fitnets.train "$student" --teacher "$TEACHER" \
      --temperature "$FITNET_T" --alpha "$ALPHA" "${SCHED[@]}" --out "$OUT/$s-fitnet-T$FITNET_T-$tag.pt"
    made+=("$OUT/$s-fitnet-T$FITNET_T-$tag.pt")
  fi
  if [ "$FITNETS" = 1 ]; then
    step "$OUT/$s-fitnet1-$tag.pt" python -m fitnets.train "$student" --teacher "$TEACHER" --single-stage \
      "${SCHED[@]}" --out "$OUT/$s-fitnet1-$tag.pt"
    made+=("$OUT/$s-fitnet1-$tag.pt")
  fi
done
python -m distillation.report "${made[@]}" --teacher "$TEACHER" --out "$(results_dir "$OUT")/distillation"
