#!/usr/bin/env bash
# The headline comparisons again with a longer, equal fine-tune: every model below (the baseline included) gets
# `--recipe quick --epochs E` on all 50,000 JPEG-copy training images, where the quick study uses 1 epoch on 10,000.
#
#   bash scripts/equal_finetune.sh 2                     # everything, 2 epochs each (about an hour per model-queue here)
#   ONLY="base l1b" THREADS=1 bash scripts/equal_finetune.sh 2 &   # two queues side by side on a 2-core CPU
#   ONLY="lowrank kd" THREADS=1 bash scripts/equal_finetune.sh 2
#   LR=0.05 WSTEPS=16 OUT=runs/ft-e8-lr05 ONLY="base w90" bash scripts/equal_finetune.sh 8   # issue 5's longer run
#
# Items (ONLY, default all but the ones marked): base (the equally fine-tuned baseline), l1b (Li et al. ResNet-56-B),
# l1r16 (L1 with SIMD-friendly widths: stage ratios 0,0.5,0.75 rounded to 16), l1u50* (uniform 50%, widths x8),
# fisher72* / fisher50* / fisher72r16* (Fisher pruning to the MACs of l1b / l1u50, and to l1b's with widths x16),
# lowrank (spatial, 65% of the MACs, ranks x16), w90 (90% magnitude pruning, gradual), w90kd* (the same with Hinton
# KD from the published dense ResNet-56), kd / kd32 (published ResNet-20 / ResNet-32 as students, Hinton KD from the
# equally fine-tuned ResNet-56 of item base, which must exist), nt* / nt32* (their no-teacher twins), fitnets*
# (two-stage FitNets into the ResNet-20), tp* (Torch-Pruning's DepGraph group pruning of the blocks' inner channels
# to half the MACs, imported with models.convert: docs/measure-your-model.md), int8 (static int8 of the baseline, the KD students and the low-rank model,
# for ONNX Runtime and for OpenVINO). Each output is skipped when it exists; a killed run continues with --resume
# from its run folder. LR overrides the quick recipe's learning rate for every item (set OUT too, so runs with
# different rates do not mix); WSTEPS is the number of gradual pruning events of item w90 (default 4). SEED (default
# 0) sets data order, augmentation and calibration images of every item; seed S > 0 writes to runs/ft-eE-sS unless
# OUT is set. CPU_BF16=1 trains with bf16 autocast on a CPU with native bf16 (AMX, AVX512-BF16: 1.76x here; the
# checkpoint records it). INT8 lists the checkpoints (names in OUT, without .pt) that item int8 quantises (default
# below: the baseline, the KD students and the low-rank model).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # DATA, THREADS, step OUTPUT command...
EPOCHS=${1:?usage: equal_finetune.sh EPOCHS}
QUICK=${QUICK:-runs/study-quick}   # the published ResNet-56/20 converted (QUICK/base/r56.pt, r20.pt)
SEED=${SEED:-0}
OUT=${OUT:-runs/ft-e$EPOCHS$([ "$SEED" = 0 ] || echo "-s$SEED")}; no_dash OUT
ONLY=${ONLY:-base l1b l1r16 lowrank w90 kd kd32 int8}
mkdir -p "$OUT" "$QUICK/base"
for depth in 56 20; do  # the published weights, as scripts/study.sh quick converts them (found or fetched, hash-checked)
  [ -e "$QUICK/base/r$depth.pt" ] && continue
  src=$(python -m models.pretrained resnet$depth) || exit 2
  step "$QUICK/base/r$depth.pt" python -m models.convert "$src" --out "$QUICK/base/r$depth.pt"
done
WSTEPS=${WSTEPS:-4}
FT=(--recipe quick --epochs "$EPOCHS" ${LR:+--lr "$LR"} --seed "$SEED" --data-dir "$DATA" --threads "$THREADS" --no-progress)
[ "${CPU_BF16:-}" = 1 ] && FT+=(--cpu-bf16)
INT8=${INT8:-r56-ft r20-kd r32-kd r56-spatial-f65-m16-ft}

for item in $ONLY; do
  case $item in
    base) step "$OUT/r56-ft.pt" python -m train "$QUICK/base/r56.pt" "${FT[@]}" --out "$OUT/r56-ft.pt" ;;
    l1b)
      step "$OUT/r56-B.pt" python -m pruning_l1.prune "$QUICK/base/r56.pt" --variant B --out "$OUT/r56-B.pt"
      step "$OUT/r56-B-ft.pt" python -m train "$OUT/r56-B.pt" "${FT[@]}" --out "$OUT/r56-B-ft.pt" ;;
    l1r16)
      step "$OUT/r56-s0-50-75r16.pt" python -m pruning_l1.prune "$QUICK/base/r56.pt" --ratios 0,0.5,0.75 --round-to 16 \
        --out "$OUT/r56-s0-50-75r16.pt"
      step "$OUT/r56-s0-50-75r16-ft.pt" python -m train "$OUT/r56-s0-50-75r16.pt" "${FT[@]}" \
        --out "$OUT/r56-s0-50-75r16-ft.pt" ;;
    l1u50)
      step "$OUT/r56-u50r8.pt" python -m pruning_l1.prune "$QUICK/base/r56.pt" --ratio 0.5 --round-to 8 \
        --out "$OUT/r56-u50r8.pt"
      step "$OUT/r56-u50r8-ft.pt" python -m train "$OUT/r56-u50r8.pt" "${FT[@]}" --out "$OUT/r56-u50r8-ft.pt" ;;
    fisher72|fisher50|fisher72r16)  # Fisher pruning inside the same fine-tune, at L1-B's / uniform-50%'s MAC cut
      case $item in fisher72) args=(--target-macs 0.724) ;; fisher50) args=(--target-macs 0.502) ;;
                    fisher72r16) args=(--target-macs 0.724 --round-to 16) ;; esac
      step "$OUT/r56-$item.pt" python -m pruning_fisher.prune "$QUICK/base/r56.pt" "${args[@]}" "${FT[@]}" \
        --out "$OUT/r56-$item.pt" ;;
    lowrank)
      step "$OUT/r56-spatial-f65-m16.pt" python -m lowrank.decompose "$QUICK/base/r56.pt" --scheme spatial \
        --target-flops 0.65 --multiple 16 --out "$OUT/r56-spatial-f65-m16.pt"
      step "$OUT/r56-spatial-f65-m16-ft.pt" python -m train "$OUT/r56-spatial-f65-m16.pt" "${FT[@]}" \
        --out "$OUT/r56-spatial-f65-m16-ft.pt" ;;
    w90) step "$OUT/r56-p90.pt" python -m pruning_weight.prune "$QUICK/base/r56.pt" --percent 90 --finetune \
           --steps "$WSTEPS" "${FT[@]}" --out "$OUT/r56-p90.pt" ;;
    w90kd) step "$OUT/r56-p90-kd.pt" python -m pruning_weight.prune "$QUICK/base/r56.pt" --percent 90 --finetune \
           --steps "$WSTEPS" --teacher "$QUICK/base/r56.pt" --temperature 4 --alpha 0.9 "${FT[@]}" \
           --out "$OUT/r56-p90-kd.pt" ;;
    kd|kd32|nt|nt32|fitnets)
      [ -f "$OUT/r56-ft.pt" ] || { echo "equal_finetune.sh: $item needs the teacher $OUT/r56-ft.pt: run item base first" >&2; exit 2; }
      if [[ $item != *32 ]]; then student=$QUICK/base/r20.pt; arch=r20; else
        student=$OUT/r32.pt; arch=r32
        src=$(python -m models.pretrained resnet32) || exit 2
        step "$student" python -m models.convert "$src" --out "$student"
      fi
      case $item in  # the no-teacher twin: same init, data order and schedule, plain cross-entropy
        kd|kd32) step "$OUT/$arch-kd.pt" python -m distillation.train "$student" --teacher "$OUT/r56-ft.pt" \
                   --temperature 4 --alpha 0.5 "${FT[@]}" --out "$OUT/$arch-kd.pt" ;;
        nt|nt32) step "$OUT/$arch-noteacher.pt" python -m distillation.train "$student" --teacher "$OUT/r56-ft.pt" \
                   --no-teacher "${FT[@]}" --out "$OUT/$arch-noteacher.pt" ;;
        fitnets) step "$OUT/$arch-fitnet.pt" python -m fitnets.train "$student" --teacher "$OUT/r56-ft.pt" \
                   "${FT[@]}" --out "$OUT/$arch-fitnet.pt" ;;
      esac ;;
    tp)
      step "$OUT/r56-tp.pth" python -m scripts.external_models torch-pruning "$QUICK/base/r56.pt" --macs 0.5 \
        --out "$OUT/r56-tp"
      step "$OUT/r56-tp.pt" python -m models.convert "$OUT/r56-tp.pth" --like "$QUICK/base/r56.pt" \
        --label torch-pruning --out "$OUT/r56-tp.pt"
      step "$OUT/r56-tp-ft.pt" python -m train "$OUT/r56-tp.pt" "${FT[@]}" --out "$OUT/r56-tp-ft.pt" ;;
    weights) ;;  # only the published weights above (scripts/budget.sh, before its parallel queues)
    int8)
      for m in $INT8; do
        [ -f "$OUT/$m.pt" ] || { echo "[skip] $OUT/$m-int8.pt: $OUT/$m.pt not made yet"; continue; }
        for engine in onnxruntime openvino; do
          step "$OUT/$m-int8-$engine.pt" python -m quantization.ptq "$OUT/$m.pt" --engine $engine --data-dir "$DATA" \
            --seed "$SEED" --threads "$THREADS" --out "$OUT/$m-int8-$engine.pt"
        done
      done ;;
    *) echo "equal_finetune.sh: unknown item '$item' (weights base l1b l1r16 l1u50 fisher72 fisher50 fisher72r16 lowrank w90" \
            "w90kd kd kd32 nt nt32 fitnets tp int8)" >&2
       exit 2 ;;
  esac
done
