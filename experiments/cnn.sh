#!/usr/bin/env bash
# CNNs with and without BatchNorm x {torch_default, xavier, kaiming, gradinit, emergence} x seeds (PAPER.md §5-6).
#   SCALE=cpu   VGG-19 and ResNet-20 (+/- BN) at width 1/4 on a 10k Fashion-MNIST subset, 2 epochs, 3 seeds,
#               two runs in parallel (joblib), one thread each. GradInit takes 78 iterations there: 1.5 passes over
#               the 10k images, the same data budget as its 390 iterations over CIFAR's 50k (GRADINIT.md §2).
#   SCALE=paper CIFAR-10, VGG-19 and ResNet-110 (+/- BN), GradInit's 200-epoch recipe, 5 seeds (GPU; add
#               hydra/launcher=slurm for a cluster); also GradInit's own baseline init (kaiming_fan_out_gradinit)
#   Both scales also run the companion paper's classifier-only instance: VGG-19 with the three-layer classifier
#   (+/- BN), init=classifier_good|classifier_medium|classifier_low (only the three Linears rescaled, alpha = 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
INITS=${INITS:-torch_default,xavier,kaiming,emergence}
HEAD3=(arch=vgg19_head3,vgg19_head3_nobn init=classifier_good,classifier_medium,classifier_low)
if [ "${SCALE:-cpu}" = paper ]; then
  "$PY" -m emergence.train -m experiment=cifar10_paper "${HEAD3[@]}" seed=${SEEDS:-0,1,2,3,4} "$@"
  exec "$PY" -m emergence.train -m experiment=cifar10_paper arch=vgg19,vgg19_nobn,resnet110,resnet110_nobn \
    init=$INITS,gradinit,kaiming_fan_out_gradinit seed=${SEEDS:-0,1,2,3,4} "$@"
fi
ARCHS=arch=vgg19,vgg19_nobn,resnet20,resnet20_nobn
PARALLEL=(hydra/launcher=local hydra.launcher.n_jobs=${JOBS:-2})
"$PY" -m emergence.train -m experiment=cnn_fashion_mnist $ARCHS init=$INITS seed=${SEEDS:-0,1,2} "${PARALLEL[@]}" "$@"
"$PY" -m emergence.train -m experiment=cnn_fashion_mnist "${HEAD3[@]}" seed=${SEEDS:-0,1,2} "${PARALLEL[@]}" "$@"
"$PY" -m emergence.train -m experiment=cnn_fashion_mnist $ARCHS init=gradinit init.iterations=${GRADINIT_ITERATIONS:-78} seed=${SEEDS:-0,1,2} \
  "${PARALLEL[@]}" "$@"
