# Sourced by the scripts in this folder.
export PYTHONUNBUFFERED=1  # a log file shows each line when it happens, not in 8 KB blocks

step() {  # step OUTPUT command...: run the command unless OUTPUT exists; a run folder left by a kill is resumed
  local out=$1; shift
  if [ -e "$out" ]; then echo "[done] $out"; return; fi
  echo "[run ] $out: $*"
  if [ -e "$out.run/last.pt" ]; then "$@" --resume; else "$@"; fi
}
