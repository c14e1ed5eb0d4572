#!/usr/bin/env bash
# How the effect depends on alpha and on the turning point (reviewer question; the configs' alpha notes cite this
# script). Runs at the emergence cell's selected LR, on the reported seeds:
#   - alpha through the extreme factor f = alpha^((L-1)/2): init.max_factor = 1.5 and 4 beside the default 2 (the
#     emergence cell itself); before the alpha rule existed, the same MLP ramps by init.alpha
#   - the turning point moved one unit-block early and late: MLP (L = 7, middle 3) at 2 and 4; VGG-19 without BN
#     (L = 17, middle 8) at 4 and 12
#   SCALE=cpu       the MLP;  SCALE=cpu-full / paper  also VGG-19 without BN
source "$(dirname "$0")/common.bash"
sweep() {  # sweep EXPERIMENT DATA ARCH TURNING_POINTS...
  local exp=$1 data=$2 arch=$3 chosen dv=() alphas
  shift 3
  if [ "$HAS_ALPHA_RULE" = 1 ]; then alphas=(init.max_factor=1.5 init.max_factor=4)
  elif [[ $arch == mlp* ]]; then alphas=(init.alpha=1.1447 init.alpha=1.5874)  # 1.5^(1/3), 4^(1/3): L = 7
  else alphas=(init.alpha=1.0520 init.alpha=1.1892); fi                        # 1.5^(1/8), 4^(1/8): L = 17
  [ "$data" != - ] && dv=("data=$data")
  if [ "$DRY_RUN" = 1 ]; then chosen=SELECTED; else
    chosen=$("$PY" scripts/select_lr.py lookup --table "$LR_TABLE" --experiment "$exp" --data "$data" --arch "$arch" \
      --init emergence) || exit 2
  fi
  for v in "${alphas[@]}" "${@/#/init.turning_point=}"; do
    queue "$(seeds "$(family_of "$arch")")" "experiment=$exp" "arch=$arch" init=emergence "$v" "optim.lr=$chosen" "${dv[@]}"
  done
}
if [ "$SCALE" = paper ]; then
  for d in mnist fashion_mnist; do sweep mlp_paper $d mlp 2 4; done
  sweep cifar10_paper - vgg19_nobn 4 12
else
  sweep mlp_fashion_mnist - mlp 2 4
  [ "$SCALE" = cpu-full ] && sweep cnn_fashion_mnist - vgg19_nobn 4 12
fi
run_queue
