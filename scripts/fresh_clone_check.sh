#!/usr/bin/env bash
# A new user's first minutes, checked: clone this repo into an empty folder (no ../shared beside it), serve the
# published weights from a local mirror, run scripts/main.sh until its taste stage has written its figure, stop.
#   MIRROR=file:///path/to/akamaster/ bash scripts/fresh_clone_check.sh     # default mirror: ../shared/pretrained/akamaster
# CIFAR10_DIR must hold the built data (a fresh machine without ../shared downloads it with torchvision instead).
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR=${MIRROR:-file://$(cd .. && pwd)/shared/pretrained/akamaster/}
export CIFAR10_DIR=${CIFAR10_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cifar-compress/cifar10}
tmp=$(mktemp -d)
trap 'kill -- -$pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
git clone -q . "$tmp/repo"
cd "$tmp/repo"
start=$(date +%s)
XDG_CACHE_HOME=$tmp/cache PRETRAINED_URL=$MIRROR setsid bash scripts/main.sh > "$tmp/main.log" 2>&1 &
pid=$!
until grep -q "first answer" "$tmp/main.log"; do
  kill -0 $pid 2>/dev/null || { cat "$tmp/main.log" >&2; echo "fresh_clone_check: main.sh stopped before the taste figure" >&2; exit 1; }
  sleep 5
done
figure=runs/imgs/taste/accuracy_vs_speedup.png
[ -s "$figure" ] || { echo "fresh_clone_check: no $figure" >&2; exit 1; }
# fetched into the (empty) cache, hash-checked there: nothing came from ../shared
ls "$tmp"/cache/cifar-compress/pretrained/resnet56-*.th >/dev/null 2>&1 || { echo "fresh_clone_check: weights were not fetched from the mirror" >&2; exit 1; }
echo "fresh_clone_check: taste figure after $(( $(date +%s) - start )) s on a fresh clone (weights from $MIRROR)"
