# Sourced by experiments/*.sh: the profile (SCALE), seeds, the job pool and the tuned-LR lookup (README "Results").
#   SCALE=cpu|cpu-full|paper  which cells and seeds run (each script says what it runs at each scale)
#   JOBS=2                    runs in parallel on CPU scales, one thread each (trainer.cpu_threads defaults to 1)
#   SMOKE=1                   every run shrunk by debug=smoke, one seed (run_all.sh sets it for make reproduce-smoke)
#   LR_TABLE                  the LR selection table the reported runs read (default $RESULTS/lr_selection.csv)
#   DRY_RUN=1                 print the commands instead of running them (the selected LRs as optim.lr=SELECTED)
# Extra arguments of a script go to every run (e.g. trainer.device=cuda hydra/launcher=slurm at SCALE=paper).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
SCALE=${SCALE:-cpu}
JOBS=${JOBS:-2}
SMOKE=${SMOKE:-0}
DRY_RUN=${DRY_RUN:-0}
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
      printf -v line '%q ' "$PY" -m emergence.train "$@" "seed=$s" "${EXTRA[@]}"
      QUEUE+=("$line")
    done
  fi
}

# run_queue: every queued command, JOBS at a time (one at a time at SCALE=paper, where the launcher parallelizes);
# each run's output goes to $RUNS_DIR/.logs/, one status line per run here. Finished runs are skipped by the runner,
# so rerunning a script resumes it. Returns 1 if a command failed (diverged runs count as done), else 0.
run_queue() {
  local n=${#QUEUE[@]} list logs jobs=$JOBS failed
  [ "$n" -eq 0 ] && return 0
  if [ "$DRY_RUN" = 1 ]; then printf '%s\n' "${QUEUE[@]}"; QUEUE=(); return 0; fi
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
  failed=0
  [ -f "$logs/failed" ] && failed=$(wc -l < "$logs/failed")
  rm -f "$logs/failed"
  if [ "$failed" -gt 0 ]; then
    echo "[$(basename "$0")] $failed of $n commands failed (logs above); rerun to retry them" >&2
    return 1
  fi
}

# grid EXPERIMENT ARCH INIT VARIANT RECIPE_LR OVERRIDES...: queue the LR-selection runs of a cell ({0.5, 1, 2} x the
# recipe LR, selection seeds), named lr_<experiment> so they never mix with the reported runs
grid() {
  local exp=$1 arch=$2 init=$3 variant=$4 base=$5 factor family vs=()
  shift 5
  read -ra vs <<< "$variant"
  family=$(family_of "$arch")
  for factor in 0.5 1 2; do
    queue "$(selection_seeds $family)" "experiment=$exp" "name=lr_$exp" "arch=$arch" "init=$init" "${vs[@]}" \
      "optim.lr=$(awk "BEGIN { printf \"%.6g\", $base * $factor }")" "$@"
  done
}

# ---- what each profile runs (one source for lr_select.sh and the reporting scripts) --------------------------------
# cells FAMILY -> one line per tuned cell: "EXPERIMENT DATA ARCH INIT RECIPE_LR [VARIANT...]" (DATA "-": the
# experiment's own). Families: mlp, mlp_controls, cnn, cnn_controls, head3, translation, more_inits.
layerwise() {  # layerwise ARCH -> the layer-wise-LR control's override, the same ramp as the init's (extreme factor 2)
  if [ "$HAS_ALPHA_RULE" = 1 ]; then echo 'optim.layerwise_lr={max_factor:2}'
  elif [[ $1 == mlp* ]]; then echo 'optim.layerwise_lr={alpha:1.2599}'  # 2^(1/3), L = 7
  else echo 'optim.layerwise_lr={alpha:1.0905}'; fi                      # 2^(1/8), L = 17 (VGG-19)
}
# the inits of the comparison (overridable, e.g. CNN_INITS="kaiming emergence" to save time). To keep cpu-full within
# 3 hours on 2 cores, PyTorch's default init (not a baseline of the paper) runs on the MLPs only there; on the CNNs and
# the Transformer the paper's baselines (Xavier, Kaiming; fairseq's init) and GradInit do. SCALE=paper runs them all.
BASE_INITS=${BASE_INITS:-torch_default xavier kaiming gradinit emergence}
if [ "$SCALE" = paper ]; then
  CNN_INITS=${CNN_INITS:-$BASE_INITS}
  TRANSLATION_INITS=${TRANSLATION_INITS:-torch_default xavier fairseq_default emergence}
else
  CNN_INITS=${CNN_INITS:-xavier kaiming gradinit emergence}
  TRANSLATION_INITS=${TRANSLATION_INITS:-xavier fairseq_default emergence}
fi
if [ "$SMOKE" = 1 ]; then
  BASE_INITS="kaiming gradinit emergence"; CNN_INITS=$BASE_INITS; TRANSLATION_INITS="xavier fairseq_default emergence"
fi
cells() {
  local exp data archs arch init d
  case $1 in
    mlp | mlp_controls)
      if [ "$SCALE" = paper ]; then exp=mlp_paper; data="mnist fashion_mnist"; else exp=mlp_fashion_mnist; data=-; fi
      archs=mlp
      if [ "$SCALE" != cpu ] && [ "$SMOKE" != 1 ]; then archs="mlp mlp_bn"; fi
      # the grid's centre: 0.02 on CPU (a first selection on {0.005, 0.01, 0.02} put 7 of 8 MLP cells at its top, so
      # the grid moved up one step for every cell alike); the paper's 0.005 at SCALE=paper
      local lr=0.02
      [ "$SCALE" = paper ] && lr=0.005
      for d in $data; do for arch in $archs; do
        if [ "$1" = mlp ]; then
          for init in $BASE_INITS; do echo "$exp $d $arch $init $lr"; done
        elif [ "$arch" = mlp ]; then  # the controls on the plain MLP; under BN they run on VGG-19 (cnn_controls)
          echo "$exp $d $arch kaiming $lr $(layerwise "$arch")"
          echo "$exp $d $arch kaiming $lr schedule.warmup_epochs=1"
          echo "$exp $d $arch emergence $lr init.inverse=true"
        fi
      done; done ;;
    cnn | cnn_controls)
      [ "$SCALE" = cpu ] && return 0
      local gi=""
      if [ "$SCALE" = paper ]; then exp=cifar10_paper; archs="vgg19 vgg19_nobn resnet110 resnet110_nobn"
      else exp=cnn_fashion_mnist; archs="vgg19 vgg19_nobn resnet20 resnet20_nobn"; gi="init.iterations=${GRADINIT_ITERATIONS:-78}"; fi
      [ "$SMOKE" = 1 ] && archs=vgg19_nobn  # smoke: one architecture per family
      if [ "$1" = cnn ]; then
        local inits=$CNN_INITS
        [ "$SCALE" = paper ] && inits="$CNN_INITS kaiming_fan_out_gradinit"  # GradInit's own baseline init
        for arch in $archs; do for init in $inits; do
          if [ "$init" = gradinit ]; then echo "$exp - $arch $init 0.1 $gi"; else echo "$exp - $arch $init 0.1"; fi
        done; done
      else
        for arch in vgg19 vgg19_nobn; do
          [ "$SMOKE" = 1 ] && [ "$arch" = vgg19 ] && continue
          if [ "$arch" = vgg19_nobn ]; then echo "$exp - $arch kaiming 0.1 $(layerwise "$arch")"; fi
          echo "$exp - $arch kaiming 0.1 schedule.warmup_epochs=1"
          echo "$exp - $arch emergence 0.1 init.inverse=true"
        done
      fi ;;
    head3)  # the companion paper's classifier-only instance, once its presets exist
      [ "$SCALE" = cpu ] || [ ! -f conf/init/classifier_good.yaml ] && return 0
      exp=cnn_fashion_mnist
      [ "$SCALE" = paper ] && exp=cifar10_paper
      for arch in vgg19_head3 vgg19_head3_nobn; do  # on CPU only without BN (the 3-hour budget of cpu-full)
        [ "$SCALE" != paper ] && [ "$arch" = vgg19_head3 ] && continue
        for init in classifier_good classifier_medium classifier_low; do echo "$exp - $arch $init 0.1"; done
      done ;;
    translation)
      [ "$SCALE" = cpu ] && return 0
      if [ "$SCALE" = paper ]; then
        for init in xavier fairseq_default gradinit emergence; do echo "iwslt14_paper - transformer_iwslt_de_en $init 5e-4"; done
      else
        local small=""
        [ "$SMOKE" = 1 ] && small="data.test_subset=64 data.bleu_max_sentences=64"  # beam search on 1000 is slow
        for init in $TRANSLATION_INITS; do echo "translation_gettext - transformer_tiny $init 2e-3 $small"; done
      fi ;;
    more_inits)  # the initializers beyond the paper's comparison (docs/extending.md), each where it belongs: orthogonal,
      # LSUV and MetaInit on the plain MLP; Fixup on the no-BN ResNet (with its scalar biases); T-Fixup on the Transformer
      [ "$SCALE" = cpu ] && return 0
      local more=${MORE_INITS:-orthogonal lsuv metainit}
      [ "$SMOKE" = 1 ] && more=lsuv
      if [ "$SCALE" = paper ]; then
        for d in mnist fashion_mnist; do for init in $more; do echo "mlp_paper $d mlp $init 0.005"; done; done
        echo "cifar10_paper - resnet110_nobn fixup 0.1 arch.fixup=true"  # (its scalars at 0.01 by the experiment)
        echo "iwslt14_paper - transformer_iwslt_de_en t_fixup 5e-4"
      else
        for init in $more; do echo "mlp_fashion_mnist - mlp $init 0.02"; done
        [ "$SMOKE" = 1 ] && return 0
        # Fixup's official recipe trains its scalar biases and multipliers at a tenth of the recipe LR
        echo "cnn_fashion_mnist - resnet20_nobn fixup 0.1 arch.fixup=true optim.bias_scale_lr=0.01"
        echo "translation_gettext - transformer_tiny t_fixup 2e-3"
      fi ;;
    *) echo "unknown cell family $1" >&2; exit 2 ;;
  esac
}

# family_of ARCH -> the seed family (mlp or other)
family_of() { [[ $1 == mlp* ]] && echo mlp || echo other; }

# each_cell FAMILY FN: FN EXPERIMENT DATA ARCH INIT RECIPE_LR VARIANT [data=DATA] for every cell of FAMILY
each_cell() {
  local exp data arch init base rest dv
  while read -r exp data arch init base rest; do
    [ -z "$exp" ] && continue
    dv=()
    [ "$data" != - ] && dv=("data=$data")
    "$2" "$exp" "$data" "$arch" "$init" "$base" "$rest" "${dv[@]}"
  done < <(cells "$1")
}

# run_cells FAMILY: queue the reported runs of every cell of FAMILY at its selected LR
run_cells() { each_cell "$1" run_cell; }
run_cell() {
  local exp=$1 data=$2 arch=$3 init=$4 rest=$6
  shift 6
  tuned_data "$exp" "$data" "$arch" "$init" "$rest" "$(seeds "$(family_of "$arch")")" "$@"
}

# tuned_data EXPERIMENT DATA ARCH INIT VARIANT SEEDS OVERRIDES...: tuned() with the data named in the lookup
tuned_data() {
  local exp=$1 data=$2 arch=$3 init=$4 variant=$5 seed_list=$6 chosen vs=()
  shift 6
  read -ra vs <<< "$variant"
  if [ "$DRY_RUN" = 1 ]; then chosen=SELECTED; else
    chosen=$("$PY" scripts/select_lr.py lookup --table "$LR_TABLE" --experiment "$exp" --data "$data" --arch "$arch" \
      --init "$init" --variant "${vs[@]}") || exit 2
  fi
  queue "$seed_list" "experiment=$exp" "arch=$arch" "init=$init" "${vs[@]}" "optim.lr=$chosen" "$@"
}

# grid_cells FAMILY: queue the LR-selection runs of every cell of FAMILY
grid_cells() { each_cell "$1" grid_cell; }
grid_cell() {
  local exp=$1 arch=$3 init=$4 base=$5 rest=$6
  shift 6
  grid "$exp" "$arch" "$init" "$rest" "$base" "$@"
}
