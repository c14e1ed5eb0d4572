#!/usr/bin/env bash
# Runs every experiment script in this folder (SCALE=cpu|paper). SMOKE=1 shrinks each run (debug=smoke, one seed).
# Finished runs are skipped, so an interrupted `make reproduce` continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=()
if [ "${SMOKE:-0}" = 1 ]; then
  export SEEDS=0 GRADINIT_ITERATIONS=5  # cnn.sh's GradInit (the MLP's and the tiny Transformer's are cheap)
  extra+=(debug=smoke)
fi
scripts=(experiments/*.sh)
n=0
for script in "${scripts[@]}"; do
  [ "$(basename "$script")" = run_all.sh ] && continue
  n=$((n + 1))
  echo "=== [$n] $script (SCALE=${SCALE:-cpu}) $(date +%T) ==="
  bash "$script" "${extra[@]}" "$@"
done
echo "=== all experiments done $(date +%T) ==="
