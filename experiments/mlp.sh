#!/usr/bin/env bash
# MLP x {torch_default, xavier, kaiming, gradinit, emergence} x seeds: the MLP rows of the paper's first-epoch comparison.
#   SCALE=cpu   (default) Fashion-MNIST, 5 epochs, 3 seeds: a few minutes on 2 cores
#   SCALE=paper MNIST and Fashion-MNIST, 20 epochs, 5 seeds
# Extra arguments go to Hydra, e.g. `hydra/launcher=slurm` or `trainer.device=cuda`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
INITS=${INITS:-torch_default,xavier,kaiming,gradinit,emergence}
if [ "${SCALE:-cpu}" = paper ]; then
  exec "$PY" -m emergence.train -m experiment=mlp_paper data=mnist,fashion_mnist init=$INITS seed=${SEEDS:-0,1,2,3,4} "$@"
else
  exec "$PY" -m emergence.train -m experiment=mlp_fashion_mnist init=$INITS seed=${SEEDS:-0,1,2} "$@"
fi
