# Sourced by the scripts in this folder: the defaults every script shares, and `step`.
export PYTHONUNBUFFERED=1  # a log file shows each line when it happens, not in 8 KB blocks
# The one data-folder default (scripts/main.sh builds or downloads CIFAR-10 there).
DATA=${CIFAR10_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cifar-compress/cifar10}
# What scripts/main.sh leaves: the published ResNet-56/20 (r56.pt, r20.pt) and the ResNet-56 fine-tuned with the
# quick recipe (r56-ft.pt), the equally fine-tuned baseline of every sweep that uses that recipe.
BASE=${BASE:-runs/study-quick/base}
QUICK_FT=(--recipe quick --subset 10000)
THREADS=${THREADS:-$(nproc)}

no_dash() {  # no_dash VAR...: a path that starts with "-" gets "./", so that mkdir or a CLI never takes it for an option
  local v
  for v in "$@"; do case ${!v} in -*) printf -v "$v" './%s' "${!v}" ;; esac; done
}
no_dash DATA BASE

results_dir() {  # results_dir RUN_FOLDER: where a run's tables go: RUN_FOLDER/results, or results/ with PUBLISH=1
  if [ "${PUBLISH:-}" = 1 ]; then echo results; else echo "$1/results"; fi
}

need() {  # need FILE...: stop with one line when an input is missing
  for f in "$@"; do
    [ -e "$f" ] || { echo "$(basename "$0"): $f missing: run 'bash scripts/main.sh' first (or set BASE)" >&2; exit 2; }
  done
}

step() {  # step OUTPUT command...: run the command unless OUTPUT exists; a run folder left by a kill is resumed
  local out=$1; shift
  if [ -e "$out" ]; then echo "[done] $out"; return; fi
  echo "[run ] $out: $*"
  if [ -e "$out.run/last.pt" ]; then "$@" --resume; else "$@"; fi
}

# The benchmark refuses to start, and stops, when other processes take the CPU (benchmark.run --require-quiet):
# under load the runtimes slow down unequally and even the ratios are wrong. ALLOW_BUSY=1 measures anyway, with the
# rows marked busy and every summary warning about them.
QUIET=(); [ "${ALLOW_BUSY:-}" = 1 ] || QUIET=(--require-quiet)

busy_warning() {  # busy_warning SUMMARY.md: repeat a summary's busy-machine warning at the end of a run
  grep -m1 -o "Warning: the machine was busy.*" "$1" 2>/dev/null | sed 's/\*\*//g' >&2 || true
}
