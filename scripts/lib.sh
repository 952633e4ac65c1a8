# Sourced by the scripts in this folder.

step() {  # step OUTPUT command...: run the command unless OUTPUT exists; a run folder left by a kill is resumed
  local out=$1; shift
  if [ -e "$out" ]; then echo "[done] $out"; return; fi
  echo "[run ] $out: $*"
  if [ -e "$out.run/last.pt" ]; then "$@" --resume; else "$@"; fi
}
