#!/usr/bin/env bash
# The whole study: baseline -> every method -> fine-tuning -> stacked compression -> benchmark -> figures -> summary.
#
#   bash scripts/study.sh taste     # minutes: published ResNet-56 compressed without any training, fastest runtime
#   bash scripts/study.sh quick     # this 2-core CPU, ~1-2 h: published ResNet-20/56, short fine-tunes on the JPEG copy
#   bash scripts/study.sh smoke     # synthetic data, tiny models, a few minutes (run by the test suite)
#   bash scripts/study.sh paper     # the papers' schedules (160-epoch baseline, 40-epoch fine-tunes, 200-epoch students): GPUs
#   bash scripts/study.sh students  # ~1.5 h here: ResNet-10 and ResNet-1 from scratch (no teacher, KD, FitNets; 3 seeds
#                                   # for ResNet-10), int8, benchmarked against the quick study's ResNet-56 teacher
#   STUDENT_SEEDS=0 bash scripts/study.sh students   # seed 0 only: every benchmark row, no over-seeds claim
#
# Outputs on disk are the state: every step is skipped when its output exists (checkpoints are written atomically),
# so an interrupted study continues where it stopped. The benchmark measures on this machine every checkpoint that
# its results CSV does not hold from this machine (same checkpoint sha256, CPU, CPU features, threads and runtime
# versions): rows from another machine are never reused. Environment: CIFAR10_DIR (data), PRETRAINED (folder with
# the akamaster .th files; default ../shared/pretrained/akamaster, then a cache, then fetched: models/pretrained.py), RUNS (default runs/study-PRESET), RESULTS / IMGS
# (default RUNS/results and RUNS/imgs; PUBLISH=1 writes the committed results/ and imgs/ instead), THREADS,
# UNTIL=methods (stop before the benchmark, to measure later on a quiet machine), ALLOW_BUSY=1 (benchmark even when
# other processes take the CPU: rows marked busy, summaries warn; by default the benchmark refuses a busy machine).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh  # DATA, THREADS, step OUTPUT command...
PRESET=${1:-quick}
case "$PRESET" in taste|smoke|quick|paper|students) ;;  # checked before anything is made (no empty run tree)
  *) echo "study.sh: unknown preset '$PRESET' (taste, smoke, quick, paper or students)" >&2; exit 2 ;;
esac
RUNS=${RUNS:-runs/study-$PRESET}; no_dash RUNS
mkdir -p "$RUNS"/{base,l1,fisher,weight,lowrank,distill,quant,stack}

case "$PRESET" in
  smoke)
    DATA="$RUNS/data"
    [ -f "$DATA/cifar-10-batches-py/test_batch" ] || python -m common.data "$DATA" --train 640 --test 128 >/dev/null
    TEACHER_ARCH=resnet20; STUDENT=resnet8
    FT=(--epochs 1 --lr 0.02 --schedule cosine --batch-size 64)
    STUDENT_FT=(--epochs 1 --lr 0.05 --schedule cosine --batch-size 64)
    L1_SCHEMES=("u50r8:--ratio 0.5 --round-to 8")
    FISHER=("f72:--target-macs 0.724")
    PERCENTS="90"; LOWRANK=("svd:--scheme svd --target-flops 0.5 --multiple 8"); CALIB=64
    BACKENDS=eager,onnx,openvino; BIG_BATCH=16; BENCH=(--batch-sizes 1,$BIG_BATCH --quick)
    ENGINES="onnxruntime openvino"
    QUIET=()  # timings of tiny synthetic models are not the point of the smoke preset
    ;;
  quick|paper|taste|students)
    if [ ! -f "$DATA/cifar-10-batches-py/test_batch" ]; then
      echo "study.sh: no CIFAR-10 under $DATA: set CIFAR10_DIR, build it with 'python ../shared/cifar10/build.py DIR'," \
           "or run scripts/main.sh (downloads with internet)" >&2
      exit 2
    fi
    TEACHER_ARCH=resnet56; STUDENT=resnet20; BIG_BATCH=64
    L1_SCHEMES=("A:--variant A" "B:--variant B" "u50r8:--ratio 0.5 --round-to 8")
    FISHER=("f72:--target-macs 0.724" "f50:--target-macs 0.502" "f72r16:--target-macs 0.724 --round-to 16")
    PERCENTS="30 50 70 90 95"; CALIB=1024
    # The three schemes at equal MACs, and the spatial scheme with SIMD-friendly ranks at 70% of the MACs.
    LOWRANK=("svd:--scheme svd --target-flops 0.5 --multiple 8" "spatial:--scheme spatial --target-flops 0.5 --multiple 8"
             "tucker2:--scheme tucker2 --target-flops 0.5 --multiple 8"
             "spatial-f7-m16:--scheme spatial --target-flops 0.7 --multiple 16")
    if [ "$PRESET" = quick ] || [ "$PRESET" = students ]; then
      FT=(--recipe quick --subset 10000)
      # Students start from the published ResNet-20: a random init cannot learn much in a CPU-sized schedule.
      STUDENT=$RUNS/base/r20.pt
      STUDENT_FT=("${FT[@]}")
      # Every checkpoint on the two deployment runtimes, the baseline also on eager (the "x eager fp32" reference):
      # ~30 s per checkpoint and runtime here, where eager for all would add ~45 s each and torch.compile ~30 s of
      # compiling per shape (it ranked between eager and ONNX Runtime: results/benchmark_backends.csv).
      BACKENDS=onnx,openvino; BENCH=(--batch-sizes 1,$BIG_BATCH --repeat 3 --slices 8 --min-seconds 1)
      ENGINES="onnxruntime openvino"
    else
      FT=(--recipe finetune)
      STUDENT_FT=(--recipe student)
      BACKENDS=eager,compile,onnx,openvino; BENCH=(--batch-sizes 1,$BIG_BATCH --repeat 3)
      ENGINES="onnxruntime openvino pt2e"
    fi
    ;;
  *) echo "study.sh: unknown preset '$PRESET' (taste, smoke, quick, paper or students)" >&2; exit 2 ;;
esac
if [ "${PUBLISH:-}" = 1 ]; then RESULTS=${RESULTS:-results}; IMGS=${IMGS:-imgs}; fi
RESULTS=${RESULTS:-$RUNS/results}; IMGS=${IMGS:-$RUNS/imgs}; no_dash RESULTS IMGS
COMMON=(--data-dir "$DATA" --threads "$THREADS" --no-progress)

# ---- baseline: published weights when given (quick, taste), trained from scratch otherwise ----
B=$RUNS/base
if [ "$PRESET" = quick ] || [ "$PRESET" = taste ] || [ "$PRESET" = students ]; then
  for depth in 56 20; do
    src=""; [ -e "$B/r$depth.pt" ] || src=$(python -m models.pretrained resnet$depth) || exit 2  # found or fetched, hash-checked
    step "$B/r$depth.pt" python -m models.convert "$src" --out "$B/r$depth.pt"
  done
else
  step "$B/r56.pt" python -m train $TEACHER_ARCH "${COMMON[@]}" \
    $([ "$PRESET" = smoke ] && echo "--epochs 2 --lr 0.05 --batch-size 64" || echo "--recipe scratch") --out "$B/r56.pt"
fi
# ---- taste: a first answer in minutes: every data-free compression of the published ResNet-56, no training ----
if [ "$PRESET" = taste ]; then
  T=$RUNS/taste; mkdir -p "$T"
  FASTEST=$(python -c 'from benchmark.runners import available_backends as a; print("openvino" if "openvino" in a() else "onnx")')
  step "$T/r56-l1-A.pt" python -m pruning_l1.prune "$B/r56.pt" --variant A --threads "$THREADS" --out "$T/r56-l1-A.pt"
  step "$T/r56-l1-B.pt" python -m pruning_l1.prune "$B/r56.pt" --variant B --threads "$THREADS" --out "$T/r56-l1-B.pt"
  step "$T/r56-p90.pt" python -m pruning_weight.prune "$B/r56.pt" --percent 90 --out "$T/r56-p90.pt"
  step "$T/r56-spatial-f7-m16.pt" python -m lowrank.decompose "$B/r56.pt" --scheme spatial --target-flops 0.7 \
    --multiple 16 --threads "$THREADS" --out "$T/r56-spatial-f7-m16.pt"
  engine=$([ "$FASTEST" = openvino ] && echo openvino || echo onnxruntime)
  step "$T/r56-int8-$engine.pt" python -m quantization.ptq "$B/r56.pt" --engine $engine --calib-images 1024 \
    --data-dir "$DATA" --threads "$THREADS" --out "$T/r56-int8-$engine.pt"
  mkdir -p "$RESULTS" "$IMGS"
  echo "[bench] 6 checkpoints on $FASTEST and eager"
  python -m benchmark.run "$B/r56.pt" "$T"/r56-{l1-A,l1-B,p90,spatial-f7-m16,int8-$engine}.pt --baseline "$B/r56.pt" \
    --test-dir "$DATA" --threads "$THREADS" --backends "eager,$FASTEST" --batch-sizes 1,64 --repeat 2 --slices 4 \
    --min-seconds 1 --skip-measured --no-progress "${QUIET[@]}" --out "$RESULTS/benchmark_taste.csv"
  python -m plots.make --results "$RESULTS/benchmark_taste.csv" --out "$IMGS/taste" --note "before fine-tuning"
  python -m plots.summary --results "$RESULTS/benchmark_taste.csv" --out "$RESULTS/summary_taste.md" \
    --title "Taste: the published ResNet-56 compressed without any fine-tuning (before fine-tuning)"
  echo "study (taste) done: $RESULTS/summary_taste.md, figures in $IMGS/taste/"
  busy_warning "$RESULTS/summary_taste.md"
  exit 0
fi

# The equally fine-tuned baseline: every method below gets the same fine-tune, and is compared with this.
step "$B/r56-ft.pt" python -m train "$B/r56.pt" "${FT[@]}" "${COMMON[@]}" --out "$B/r56-ft.pt"
TEACHER=$B/r56.pt
MEASURED=("$B/r56.pt" "$B/r56-ft.pt")

# ---- students: ResNet-10 (14 layers) and ResNet-1 (8 layers) have no published weights, so they train from scratch:
# the no-teacher twin, Hinton KD and two-stage FitNets from the fine-tuned ResNet-56, same init, data order and
# schedule per seed; 3 seeds for the ResNet-10 (the FitNets-vs-KD claim), one for the ResNet-1; int8 of the seed-0
# KD and FitNets students on both engines; every runtime, against the teacher ----
if [ "$PRESET" = students ]; then
  # 4 cosine epochs over all 50,000 images at lr 0.1, batch 128: a ResNet-10 epoch takes ~1 min on one AMX core in
  # bf16, where the teacher's forward pass (~2,100 img/s in bf16) costs about what the student's step does.
  STUDENT_SEEDS=${STUDENT_SEEDS:-0 1 2}
  BF16=$(python -c 'from common.machine import cpu_has_native_bf16 as b; print(1 if b() else "")')
  for seed in $STUDENT_SEEDS; do  # each seed's own table stays in its run folder (PUBLISH unset)
    STUDENTS=$([ "$seed" = 0 ] && echo "resnet10 resnet1" || echo resnet10) TEACHER=$B/r56-ft.pt TEMPS=4 FITNET_T=4 \
      ALPHA=0.9 FITNETS=2 SUBSET=50000 EPOCHS=4 LR=0.1 BATCH=128 CPU_BF16=$BF16 SEED=$seed OUT=$RUNS/scratch-s$seed \
      PUBLISH= bash scripts/sweep_distill.sh
  done
  S0=$RUNS/scratch-s0; MEASURED=("$B/r56-ft.pt" "$S0"/r{10,1}-{noteacher,kd-T4,fitnet-T4}-s50000-e4.pt)
  for student in "$S0"/r{10,1}-{kd-T4,fitnet-T4}-s50000-e4.pt; do
    for engine in $ENGINES; do
      step "${student%.pt}-int8-$engine.pt" python -m quantization.ptq "$student" --engine "$engine" \
        --calib-images $CALIB --data-dir "$DATA" --threads "$THREADS" --out "${student%.pt}-int8-$engine.pt"
      MEASURED+=("${student%.pt}-int8-$engine.pt")
    done
  done
  [ "${UNTIL:-}" = methods ] && { echo "study (students): every checkpoint is made (UNTIL=methods)"; exit 0; }
  mkdir -p "$RESULTS/reports" "$IMGS"
  python -m benchmark.run "${MEASURED[@]}" --baseline "$B/r56-ft.pt" --test-dir "$DATA" --threads "$THREADS" \
    --backends eager,compile,onnx,openvino "${BENCH[@]}" --skip-measured --no-progress "${QUIET[@]}" \
    --out "$RESULTS/benchmark_students.csv"
  python -m plots.make --results "$RESULTS/benchmark_students.csv" --out "$IMGS/students"
  python -m plots.summary --results "$RESULTS/benchmark_students.csv" --out "$RESULTS/summary_students.md" \
    --title "ResNet-10 and ResNet-1 students from scratch, against the ResNet-56 teacher"
  # The report covers the seeds trained in this run: a run with fewer seeds (STUDENT_SEEDS=0, for the benchmark rows)
  # writes its own report and leaves the 3-seed one alone.
  REPORT=distillation_scratch$([ "$STUDENT_SEEDS" = "0 1 2" ] || echo "-seeds-${STUDENT_SEEDS// /-}")
  reported=()
  for seed in $STUDENT_SEEDS; do
    for f in "$RUNS/scratch-s$seed"/r*-{noteacher,kd-T4,fitnet-T4}-s50000-e4.pt; do [ -e "$f" ] && reported+=("$f"); done
  done
  python -m distillation.report "${reported[@]}" --teacher "$B/r56-ft.pt" --benchmark "$RESULTS/benchmark_students.csv" \
    --speed-batch "$BIG_BATCH" --out "$RESULTS/reports/$REPORT" >/dev/null
  echo "study (students) done: $RESULTS/summary_students.md, $RESULTS/reports/$REPORT.md"
  busy_warning "$RESULTS/summary_students.md"
  exit 0
fi

# ---- L1 filter pruning (Li et al.): prune, fine-tune ----
for scheme in "${L1_SCHEMES[@]}"; do
  name=${scheme%%:*}; args=${scheme#*:}
  # shellcheck disable=SC2086
  step "$RUNS/l1/r56-$name.pt" python -m pruning_l1.prune "$B/r56.pt" $args --test-dir "$DATA" --threads "$THREADS" \
    --out "$RUNS/l1/r56-$name.pt"
  step "$RUNS/l1/r56-$name-ft.pt" python -m train "$RUNS/l1/r56-$name.pt" "${FT[@]}" "${COMMON[@]}" \
    --out "$RUNS/l1/r56-$name-ft.pt"
  MEASURED+=("$RUNS/l1/r56-$name-ft.pt")
done

# ---- Fisher pruning (Theis et al.): the least salient channels removed during the fine-tune, at the MAC cuts of
# L1-B (72.4% kept) and of the uniform 50% scheme (50.2%), and at L1-B's cut with widths kept multiples of 16 ----
for config in "${FISHER[@]}"; do
  name=${config%%:*}; args=${config#*:}
  # shellcheck disable=SC2086
  step "$RUNS/fisher/r56-$name.pt" python -m pruning_fisher.prune "$B/r56.pt" $args "${FT[@]}" "${COMMON[@]}" \
    --out "$RUNS/fisher/r56-$name.pt"
  MEASURED+=("$RUNS/fisher/r56-$name.pt")
done

# ---- magnitude weight pruning (Han et al.): gradual pruning inside the masked fine-tune ----
for p in $PERCENTS; do
  step "$RUNS/weight/r56-p$p.pt" python -m pruning_weight.prune "$B/r56.pt" --percent "$p" --finetune --steps 4 \
    "${FT[@]}" "${COMMON[@]}" --out "$RUNS/weight/r56-p$p.pt"
  MEASURED+=("$RUNS/weight/r56-p$p.pt")
done

# ---- low-rank factorisation, then the same fine-tune ----
for config in "${LOWRANK[@]}"; do
  name=${config%%:*}; args=${config#*:}
  # shellcheck disable=SC2086
  step "$RUNS/lowrank/r56-$name.pt" python -m lowrank.decompose "$B/r56.pt" $args --test-dir "$DATA" --threads "$THREADS" \
    --out "$RUNS/lowrank/r56-$name.pt"
  step "$RUNS/lowrank/r56-$name-ft.pt" python -m train "$RUNS/lowrank/r56-$name.pt" "${FT[@]}" \
    "${COMMON[@]}" --out "$RUNS/lowrank/r56-$name-ft.pt"
  MEASURED+=("$RUNS/lowrank/r56-$name-ft.pt")
done

# ---- students: no teacher, Hinton KD, FitNets (two-stage and single-stage), equal schedules ----
S=$RUNS/distill
step "$S/student-noteacher.pt" python -m distillation.train $STUDENT --teacher "$B/r56-ft.pt" --no-teacher \
  "${STUDENT_FT[@]}" "${COMMON[@]}" --out "$S/student-noteacher.pt"
step "$S/student-kd.pt" python -m distillation.train $STUDENT --teacher "$B/r56-ft.pt" --temperature 4 \
  --alpha 0.5 "${STUDENT_FT[@]}" "${COMMON[@]}" --out "$S/student-kd.pt"
step "$S/student-fitnet.pt" python -m fitnets.train $STUDENT --teacher "$B/r56-ft.pt" \
  "${STUDENT_FT[@]}" "${COMMON[@]}" --out "$S/student-fitnet.pt"
step "$S/student-fitnet1.pt" python -m fitnets.train $STUDENT --teacher "$B/r56-ft.pt" --single-stage \
  "${STUDENT_FT[@]}" "${COMMON[@]}" --out "$S/student-fitnet1.pt"
MEASURED+=("$S/student-noteacher.pt" "$S/student-kd.pt" "$S/student-fitnet.pt" "$S/student-fitnet1.pt")

# ---- int8: static post-training quantisation for each deployment engine, calibrated on the same training images ----
int8() {  # int8 SRC OUT_STEM: one int8 checkpoint per engine, OUT_STEM-ENGINE.pt
  for engine in $ENGINES; do
    step "$2-$engine.pt" python -m quantization.ptq "$1" --engine "$engine" --calib-images $CALIB --data-dir "$DATA" \
      --threads "$THREADS" --out "$2-$engine.pt"
    MEASURED+=("$2-$engine.pt")
  done
}
int8 "$B/r56-ft.pt" "$RUNS/quant/r56-ft-int8"

# ---- stacked: L1 (SIMD-friendly widths) -> KD fine-tune from the unpruned teacher -> int8; student -> int8 ----
L1=$RUNS/l1/r56-u50r8.pt
step "$RUNS/stack/r56-u50r8-kd.pt" python -m distillation.train "$L1" --teacher "$B/r56-ft.pt" \
  --temperature 4 --alpha 0.5 "${FT[@]}" "${COMMON[@]}" --out "$RUNS/stack/r56-u50r8-kd.pt"
MEASURED+=("$RUNS/stack/r56-u50r8-kd.pt")
int8 "$RUNS/stack/r56-u50r8-kd.pt" "$RUNS/stack/r56-u50r8-kd-int8"
int8 "$S/student-kd.pt" "$RUNS/stack/student-kd-int8"

if [ "${UNTIL:-}" = methods ]; then  # e.g. train on a busy machine now, benchmark later on a quiet one
  echo "study ($PRESET): every checkpoint is made; stopping before the benchmark (UNTIL=methods)"; exit 0
fi

# ---- measure every checkpoint against the equally fine-tuned baseline, then figures and summary ----
mkdir -p "$RESULTS" "$IMGS"
echo "[bench] ${#MEASURED[@]} checkpoints on $(python -c 'from common.machine import cpu_name; print(cpu_name())')"
# the baseline also on eager PyTorch (the reference of "x eager fp32"), in the same interleaved run
python -m benchmark.run "${MEASURED[@]}" --baseline "$B/r56-ft.pt" --test-dir "$DATA" --threads "$THREADS" \
  --backends "$BACKENDS" --baseline-backends eager "${BENCH[@]}" --skip-measured --no-progress "${QUIET[@]}" \
  --out "$RESULTS/benchmark.csv"
python -m plots.make --results "$RESULTS/benchmark.csv" --out "$IMGS"
python -m plots.summary --results "$RESULTS/benchmark.csv" --out "$RESULTS/summary.md"

# ---- each method's table: a query over the checkpoints' metadata (and the benchmark CSV) ----
R=$RESULTS/reports; mkdir -p "$R"
python -m pruning_l1.accuracy_table "$RUNS"/l1/r56-*.pt --baseline "$B/r56-ft.pt" --out "$R/l1_accuracy.md" >/dev/null
python -m pruning_fisher.report "$RUNS"/fisher/r56-*.pt "$RUNS"/l1/r56-*-ft.pt --baseline "$B/r56-ft.pt" \
  --benchmark "$RESULTS/benchmark.csv" --speed-batch "$BIG_BATCH" --out "$R/fisher_vs_l1" >/dev/null
python -m pruning_weight.report "$RUNS"/weight/r56-p*.pt --baseline "$B/r56-ft.pt" --out "$R/weight_pruning" >/dev/null
python -m lowrank.report "$RUNS"/lowrank/r56-*.pt --baseline "$B/r56-ft.pt" --out "$R/lowrank" >/dev/null
python -m distillation.report "$S"/student-*.pt --teacher "$B/r56-ft.pt" --benchmark "$RESULTS/benchmark.csv" \
  --speed-batch "$BIG_BATCH" --out "$R/distillation" >/dev/null
echo "study ($PRESET) done: $RESULTS/summary.md, method tables in $R/, figures in $IMGS/"
busy_warning "$RESULTS/summary.md"
