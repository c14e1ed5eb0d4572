#!/usr/bin/env bash
# Runs one profile (README "Results"): SCALE=cpu (the MLP claims, <= 60 min on 2 cores), cpu-full (the whole CPU
# evidence set), paper (GPU protocol). The LR selection runs first; every later script reads its table. JOBS=2 runs in
# parallel (one thread each); SMOKE=1 shrinks every run (debug=smoke, one seed, one architecture per family).
# Finished runs are skipped, so an interrupted profile continues where it stopped; rerun until it reports no failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export SCALE=${SCALE:-cpu}
case $SCALE in
  cpu | cpu-full | paper) ;;
  *) echo "SCALE must be cpu, cpu-full or paper; got '$SCALE'" >&2; exit 2 ;;
esac
if [ "${SMOKE:-0}" = 1 ]; then
  export GRADINIT_ITERATIONS=5 RESULTS=${RESULTS:-${EMERGENCE_RUNS:-runs}/results}
fi
scripts=(lr_select mlp controls alpha_sweep cnn translation more_inits emergence_vs_alpha)
failed=()
for i in "${!scripts[@]}"; do
  script=experiments/${scripts[$i]}.sh
  echo "=== [$((i + 1))/${#scripts[@]}] $script (SCALE=$SCALE) $(date +%T) ==="
  bash "$script" "$@"
  rc=$?
  if [ "$rc" = 2 ]; then echo "=== configuration error in $script: stopped ===" >&2; exit 2; fi
  [ "$rc" != 0 ] && failed+=("$script")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "=== done $(date +%T) with failed runs in: ${failed[*]} (rerun to retry them) ===" >&2
  exit 1
fi
echo "=== all experiments done $(date +%T) ==="
