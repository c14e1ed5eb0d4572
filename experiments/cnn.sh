#!/usr/bin/env bash
# CNNs with and without BatchNorm x {torch_default, xavier, kaiming, emergence} x seeds (PAPER.md §5-6).
#   SCALE=cpu   VGG-19 and ResNet-20 (+/- BN) at width 1/4 on a 10k Fashion-MNIST subset, 2 epochs, 3 seeds,
#               two runs in parallel (joblib), one thread each
#   SCALE=paper CIFAR-10, VGG-19 and ResNet-110 (+/- BN), GradInit's 200-epoch recipe, 5 seeds (GPU; add
#               hydra/launcher=slurm for a cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
INITS=${INITS:-torch_default,xavier,kaiming,emergence}
if [ "${SCALE:-cpu}" = paper ]; then
  exec "$PY" -m emergence.train -m experiment=cifar10_paper arch=vgg19,vgg19_nobn,resnet110,resnet110_nobn \
    init=$INITS seed=${SEEDS:-0,1,2,3,4} "$@"
else
  exec "$PY" -m emergence.train -m experiment=cnn_fashion_mnist arch=vgg19,vgg19_nobn,resnet20,resnet20_nobn \
    init=$INITS seed=${SEEDS:-0,1,2} hydra/launcher=joblib hydra.launcher.n_jobs=${JOBS:-2} "$@"
fi
