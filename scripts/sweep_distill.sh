#!/usr/bin/env bash
# Sweep knowledge distillation and FitNets over students, teachers and temperatures, each beside a
# no-teacher twin trained with the same seed, epochs and schedule, then write results/distillation.{csv,md}.
#
#   CIFAR10_DIR=~/.cache/cifar-compress/cifar10 scripts/sweep_distill.sh
#   STUDENTS=resnet20 TEMPS="1 2 4" scripts/sweep_distill.sh                  # the committed random-init comparison
#   STUDENTS=runs/base/r20.pt TEMPS=4 ALPHA=0.5 SUBSET=3000 EPOCHS=2 LR=0.01 FITNETS=0 scripts/sweep_distill.sh
#                                                                  # both twins start from the published ResNet-20
#
# Every knob is an environment variable; defaults are the short CPU schedule used for the committed table.
set -euo pipefail
cd "$(dirname "$0")/.."

TEACHERS=${TEACHERS:-runs/base/r56.pt}
STUDENTS=${STUDENTS:-resnet20 resnet10 resnet1}
TEMPS=${TEMPS:-1 2 4}
FITNET_T=${FITNET_T:-2}     # stage-2 KD temperature of two-stage FitNets
ALPHA=${ALPHA:-0.9}
SUBSET=${SUBSET:-10000}
EPOCHS=${EPOCHS:-1}
LR=${LR:-0.05}
BATCH=${BATCH:-64}
SEED=${SEED:-0}
THREADS=${THREADS:-1}
FITNETS=${FITNETS:-1}          # 0: KD only
OUT=${OUT:-runs/distill}
DATA=${CIFAR10_DIR:-data}

SCHED=(--data-dir "$DATA" --subset "$SUBSET" --epochs "$EPOCHS" --lr "$LR" --batch-size "$BATCH" --schedule cosine
       --weight-decay 5e-4 --seed "$SEED" --threads "$THREADS" --no-progress)
mkdir -p "$OUT"
tag="s${SUBSET}-e${EPOCHS}"
for teacher in $TEACHERS; do
  t=$(basename "$teacher" .pt)
  for student in $STUDENTS; do
    if [ -f "$student" ]; then s=$(basename "$student" .pt)pub; else s=r${student#resnet}; fi  # CKPT init or name
    # the twin: same student init (seeded), same data order, plain cross-entropy
    [ -f "$OUT/$s-noteacher-$tag.pt" ] || python -m distillation.train --teacher "$teacher" --student "$student" \
        --no-teacher "${SCHED[@]}" --out "$OUT/$s-noteacher-$tag.pt"
    for T in $TEMPS; do
      kd="$OUT/$s-kd-$t-T$T$([ "$ALPHA" = 0.9 ] || echo "-a$ALPHA")-$tag.pt"
      [ -f "$kd" ] || python -m distillation.train --teacher "$teacher" --student "$student" \
          --temperature "$T" --alpha "$ALPHA" "${SCHED[@]}" --out "$kd"
    done
    if [ "$FITNETS" = 1 ]; then
      [ -f "$OUT/$s-fitnet-$t-T$FITNET_T-$tag.pt" ] || python -m fitnets.train --teacher "$teacher" --student "$student" \
          --temperature "$FITNET_T" --alpha "$ALPHA" "${SCHED[@]}" --out "$OUT/$s-fitnet-$t-T$FITNET_T-$tag.pt"
      [ -f "$OUT/$s-fitnet1-$t-$tag.pt" ] || python -m fitnets.train --teacher "$teacher" --student "$student" \
          --single-stage "${SCHED[@]}" --out "$OUT/$s-fitnet1-$t-$tag.pt"
    fi
  done
done
python -m distillation.report "$OUT"/*.pt --teacher "${TEACHERS%% *}" --data-dir "$DATA" --threads "$THREADS" \
    --out results/distillation
