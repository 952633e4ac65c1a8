#!/usr/bin/env bash
# The GPU checks in one go (what ran on a lent H200, results/gpu/): the CUDA tests, the 90% weight-pruning
# equal fine-tune (dense and 90% sparse, 20 epochs, lr 0.05, AMP, side by side on one GPU) and the CUDA benchmark.
#
#   bash scripts/gpu_check.sh        # SRC=../shared/cifar10 CKPTS=runs/study-quick/base OUT=runs/gpu by default
#   EPOCHS=30 TRAIN_TIMEOUT=900 bash scripts/gpu_check.sh   # a longer equal fine-tune
#
# On the device machine ../shared does not travel: there SRC and CKPTS pointed at an ignored folder holding a copy
# of ../shared/cifar10 and the two converted checkpoints, and OUT at the tool's $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
SRC=${SRC:-../shared/cifar10}
CKPTS=${CKPTS:-runs/study-quick/base}
OUT=${OUT:-runs/gpu}; case $OUT in -*) OUT=./$OUT ;; esac  # a path starting with "-" is not an option
D=${CIFAR10_DIR:-/tmp/cifar10}
E=${EPOCHS:-20}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-360}   # seconds per training run: a lent device has a fixed time budget
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,driver_version --format=csv; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
  nproc; [ -f "$D/BUILT" ] || python3 "$SRC/build.py" "$D"; } > "$OUT/machine.log" 2>&1
COMMON=(--recipe quick --epochs "$E" --lr 0.05 --data-dir "$D" --device cuda --no-progress --threads 4)
timeout "$TRAIN_TIMEOUT" python3 -m train "$CKPTS/r56.pt" "${COMMON[@]}" --run-dir /tmp/run-base \
  --out "$OUT/r56-ft-e$E.pt" > "$OUT/base.log" 2>&1 &
timeout "$TRAIN_TIMEOUT" python3 -m pruning_weight.prune "$CKPTS/r56.pt" --percent 90 --finetune --steps 16 "${COMMON[@]}" \
  --run-dir /tmp/run-w90 --no-export --out "$OUT/r56-p90-e$E.pt" > "$OUT/w90.log" 2>&1 &
CIFAR10_DIR=$D timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_benchmark.py tests/test_foundation.py \
  -k "cuda or CUDA or amp or ddp" > "$OUT/tests.log" 2>&1
wait
timeout 170 python3 -m benchmark.run "$CKPTS/r56.pt" "$CKPTS/r20.pt" --test-dir "$D/lossless-test1000" --device cuda \
  --backends eager --batch-sizes 1,64 --repeat 3 --out "$OUT/benchmark_gpu.csv" --no-progress > "$OUT/bench.log" 2>&1
ls -la "$OUT"
