# Sourced by experiments/*.sh: the profile (SCALE), seeds, the job pool and the tuned-LR lookup (README "Results").
#   SCALE=cpu|cpu-full|paper  which cells and seeds run (each script says what it runs at each scale)
#   JOBS=2                    runs in parallel on CPU scales, one thread each (trainer.cpu_threads=1)
#   SMOKE=1                   every run shrunk by debug=smoke, one seed (run_all.sh sets it for make reproduce-smoke)
#   LR_TABLE                  the LR selection table the reported runs read (default $RESULTS/lr_selection.csv)
# Extra arguments of a script go to every run (e.g. trainer.device=cuda hydra/launcher=slurm at SCALE=paper).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
SCALE=${SCALE:-cpu}
JOBS=${JOBS:-2}
SMOKE=${SMOKE:-0}
RESULTS=${RESULTS:-results}
LR_TABLE=${LR_TABLE:-$RESULTS/lr_selection.csv}
RUNS_DIR=${EMERGENCE_RUNS:-runs}
case $SCALE in
  cpu | cpu-full | paper) ;;
  *) echo "SCALE must be cpu, cpu-full or paper; got '$SCALE'" >&2; exit 2 ;;
esac
EXTRA=("$@")
[ "$SMOKE" = 1 ] && EXTRA+=(debug=smoke)
# The alpha rule (init.max_factor: alpha = f^(2/(L-1)), the extreme factor f = 2 by default) where it exists; before it,
# the same ramps by their alpha.
if grep -q '^max_factor:' conf/init/emergence.yaml; then HAS_ALPHA_RULE=1; else HAS_ALPHA_RULE=0; fi

# seeds of the reported runs and of the LR selection (never the same), per family
seeds() {  # seeds FAMILY -> space-separated list
  local n
  if [ "$SMOKE" = 1 ]; then echo 0; return; fi
  case $1 in
    mlp) n=10 ;;
    *) n=5 ;;
  esac
  seq -s ' ' 0 $((n - 1))
}
selection_seeds() {  # selection_seeds FAMILY
  if [ "$SMOKE" = 1 ]; then echo 100; return; fi
  case $1 in mlp) echo "100 101" ;; *) echo 100 ;; esac
}

QUEUE=()
# queue SEEDS OVERRIDES...: one run per seed on CPU scales; one Hydra multirun over the seeds at SCALE=paper (so a
# cluster launcher given as an extra argument runs them as an array)
queue() {
  local seed_list=$1 line
  shift
  if [ "$SCALE" = paper ] && [ "$SMOKE" != 1 ]; then
    printf -v line '%q ' "$PY" -m emergence.train -m "$@" "seed=${seed_list// /,}" "${EXTRA[@]}"
    QUEUE+=("$line")
  else
    for s in $seed_list; do
      printf -v line '%q ' "$PY" -m emergence.train "$@" "seed=$s" trainer.cpu_threads=1 "${EXTRA[@]}"
      QUEUE+=("$line")
    done
  fi
}

# run_queue: every queued command, JOBS at a time (one at a time at SCALE=paper, where the launcher parallelizes);
# each run's output goes to $RUNS_DIR/.logs/, one status line per run here. Finished runs are skipped by the runner,
# so rerunning a script resumes it. Returns the number of failed commands (0 = all done; diverged runs count as done).
run_queue() {
  local n=${#QUEUE[@]} list logs jobs=$JOBS failed
  [ "$n" -eq 0 ] && return 0
  [ "$SCALE" = paper ] && [ "$SMOKE" != 1 ] && jobs=1
  logs="$RUNS_DIR/.logs"
  mkdir -p "$logs"
  list=$(mktemp)
  for i in "${!QUEUE[@]}"; do printf '%s\t%s\n' "$((i + 1))/$n" "${QUEUE[$i]}"; done > "$list"
  echo "[$(basename "$0")] $n runs, $jobs at a time ($(date +%T))"
  export LOGS=$logs
  # shellcheck disable=SC2016
  xargs -d '\n' -n 1 -P "$jobs" bash -c '
    id=${1%%$'"'\t'"'*}; cmd=${1#*$'"'\t'"'}
    log="$LOGS/$(date +%s%N).log"
    if eval "$cmd" > "$log" 2>&1; then echo "  [$id] ok  ${cmd#* -m emergence.train }"; rm -f "$log"
    else echo "  [$id] FAILED (log: $log)  ${cmd#* -m emergence.train }"; echo x >> "$LOGS/failed"; fi' _ < "$list" || true
  rm -f "$list"
  QUEUE=()
  failed=$(wc -l < "$logs/failed" 2>/dev/null || echo 0)
  rm -f "$logs/failed"
  if [ "$failed" -gt 0 ]; then
    echo "[$(basename "$0")] $failed of $n commands failed (logs above); rerun to retry them" >&2
    return 1
  fi
}

# lr EXPERIMENT ARCH INIT [VARIANT] -> the LR chosen by experiments/lr_select.sh for that cell (exit 2 if none).
# VARIANT: the cell's other overrides, space-separated ("" for none).
lr() {
  local vs=()
  read -ra vs <<< "${4:-}"
  "$PY" scripts/select_lr.py lookup --table "$LR_TABLE" --experiment "$1" --arch "$2" --init "$3" --variant "${vs[@]}"
}

# tuned EXPERIMENT ARCH INIT VARIANT SEEDS OVERRIDES... (VARIANT space-separated, "" for none): queue a reported cell at its selected LR
tuned() {
  local exp=$1 arch=$2 init=$3 variant=$4 seed_list=$5 chosen
  shift 5
  chosen=$(lr "$exp" "$arch" "$init" "$variant") || exit 2
  local vs=()
  read -ra vs <<< "$variant"
  queue "$seed_list" "experiment=$exp" "arch=$arch" "init=$init" "${vs[@]}" "optim.lr=$chosen" "$@"
}

# grid EXPERIMENT ARCH INIT VARIANT RECIPE_LR OVERRIDES...: queue the LR-selection runs of a cell ({0.5, 1, 2} x the
# recipe LR, selection seeds), named lr_<experiment> so they never mix with the reported runs
grid() {
  local exp=$1 arch=$2 init=$3 variant=$4 base=$5 factor family vs=()
  shift 5
  read -ra vs <<< "$variant"
  family=cnn
  [[ $arch == mlp* ]] && family=mlp
  [[ $arch == transformer* ]] && family=transformer
  for factor in 0.5 1 2; do
    queue "$(selection_seeds $family)" "experiment=$exp" "name=lr_$exp" "arch=$arch" "init=$init" "${vs[@]}" \
      "optim.lr=$(awk "BEGIN { printf \"%.6g\", $base * $factor }")" "$@"
  done
}
