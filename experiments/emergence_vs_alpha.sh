#!/usr/bin/env bash
# Emergence E at init against alpha, the inverse ramp and the baselines (docs/method.md#what-the-rescale-does): results/emergence_vs_alpha.*
#   SCALE=cpu, cpu-full   the MLP on Fashion-MNIST probes
#   SCALE=paper also the CNNs on CIFAR-10 probes
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ "${DRY_RUN:-0}" = 1 ]; then echo "$PY scripts/emergence_vs_alpha.py (SCALE=${SCALE:-cpu})"; exit 0; fi
if [ "${SMOKE:-0}" = 1 ]; then exec "$PY" scripts/emergence_vs_alpha.py --arch mlp --seeds 0 --out "${RESULTS:-${EMERGENCE_RUNS:-runs}/results}"; fi
if [ "${SCALE:-cpu}" = paper ]; then
  "$PY" scripts/emergence_vs_alpha.py --arch mlp --data fashion_mnist --out "${RESULTS:-results}" "$@"
  exec "$PY" scripts/emergence_vs_alpha.py --arch vgg19 vgg19_nobn resnet110 resnet110_nobn --data cifar10 \
    --out "${RESULTS:-results}/cifar10" "$@"
else
  exec "$PY" scripts/emergence_vs_alpha.py --arch mlp --data fashion_mnist --out "${RESULTS:-results}" "$@"
fi
