#!/usr/bin/env bash
# Does the emergence ramp work through something simpler? (docs/method.md; rows of the MLP table)
#   - layer-wise LR control: Kaiming init, lr * alpha^(-2 e_l) per layer (== the ramp's dynamics on a plain ReLU net),
#     alpha from the same max_factor rule as the init
#   - LR warm-up baseline: Kaiming init, linear warm-up over the first epoch
#   - the inverse ("low emergence") ramp
#   - an alpha sweep (forward ramp), alpha = 1.1 .. 2 (the default alpha comes from init.max_factor=2: 2^(1/3) on the
#     7-layer MLP)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EXP=experiment=mlp_fashion_mnist
[ "${SCALE:-cpu}" = paper ] && EXP="experiment=mlp_paper data=mnist,fashion_mnist"
SEEDS=${SEEDS:-0,1,2}
"$PY" -m emergence.train -m $EXP init=kaiming 'optim.layerwise_lr={max_factor:2}' seed=$SEEDS "$@"
"$PY" -m emergence.train -m $EXP init=kaiming schedule.warmup_epochs=1 seed=$SEEDS "$@"
"$PY" -m emergence.train -m $EXP init=emergence init.inverse=true seed=$SEEDS "$@"
"$PY" -m emergence.train -m $EXP init=emergence init.alpha=1.1,1.5,2.0 seed=$SEEDS "$@"
