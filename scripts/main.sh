#!/usr/bin/env bash
# The main job on a fresh machine: the data, a first answer in minutes (set taste: the published ResNet-56
# compressed without any training), then the study (set $PRESET, default quick): every task of the set as processes
# on this machine, its benchmark, summaries and figures (python -m study; docs/cluster.md for a Slurm cluster).
#   bash scripts/main.sh                   # data into $CIFAR10_DIR (default ~/.cache/cifar-compress/cifar10)
#   PRESET=students bash scripts/main.sh   # another set; RUNS (default runs), PUBLISH=1 (the committed results/SET/
#                                          # and imgs/SET/), ALLOW_BUSY=1 (benchmark beside other work, rows marked)
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
OPTIONS=(--runs "${RUNS:-runs}")
[ "${PUBLISH:-}" = 1 ] && OPTIONS+=(--publish)
[ "${ALLOW_BUSY:-}" = 1 ] && OPTIONS+=(--allow-busy)
start=$(date +%s)
python -m study all taste "${OPTIONS[@]}"
echo "main.sh: first answer (before fine-tuning) after $(( ($(date +%s) - start) / 60 )) min; now the ${PRESET:-quick} study"
python -m study all "${PRESET:-quick}" "${OPTIONS[@]}"
echo "main.sh: done after $(( ($(date +%s) - start) / 60 )) min"
