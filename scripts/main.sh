#!/usr/bin/env bash
# The main job on a fresh machine: data, published baseline, a first answer in minutes (study preset taste), then
# the study (preset: $PRESET, default quick). Results and figures go under runs/study-PRESET/ (PUBLISH=1: the
# committed results/ and imgs/).
#   bash scripts/main.sh            # data into $CIFAR10_DIR (default ~/.cache/cifar-compress/cifar10)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${PRESET:-quick}" in smoke|quick|paper|students) ;;  # checked before the taste stage runs
  *) echo "main.sh: unknown PRESET '${PRESET}' (smoke, quick, paper or students)" >&2; exit 2 ;;
esac
export CIFAR10_DIR="${CIFAR10_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cifar-compress/cifar10}"
if [ ! -f "$CIFAR10_DIR/cifar-10-batches-py/test_batch" ]; then
  if [ -f ../shared/cifar10/build.py ]; then
    python ../shared/cifar10/build.py "$CIFAR10_DIR"
  else
    python -c "import torchvision, sys; torchvision.datasets.CIFAR10(sys.argv[1], download=True)" "$CIFAR10_DIR" \
      || { echo "main.sh: no CIFAR-10: build ../shared/cifar10 or allow the download into $CIFAR10_DIR" >&2; exit 2; }
  fi
fi
start=$(date +%s)
RUNS=${RUNS:-runs/study-${PRESET:-quick}} bash scripts/study.sh taste
echo "main.sh: first answer (before fine-tuning) after $(( ($(date +%s) - start) / 60 )) min; now the ${PRESET:-quick} study"
RUNS=${RUNS:-runs/study-${PRESET:-quick}} bash scripts/study.sh "${PRESET:-quick}"
echo "main.sh: done after $(( ($(date +%s) - start) / 60 )) min"
