#!/usr/bin/env bash
# Transformer machine translation x inits x seeds: the paper's Table 3 (IWSLT'14 De-En BLEU after 80 epochs).
#   SCALE=cpu   transformer_tiny on the offline Ding De-En corpus (make data), 5 inits x 3 seeds, two runs in
#               parallel (hydra/launcher=local), one thread each: about 15 min on 2 cores
#   SCALE=paper iwslt14_paper (80 epochs) with xavier and emergence x 5 seeds, then wmt16_paper (3 seeds); GPU, data
#               from scripts/prepare_iwslt14.py / prepare_wmt16.py; add hydra/launcher=slurm for a cluster
# translation tasks batch by tokens (data.max_tokens); trainer.batch_size is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ "${SCALE:-cpu}" = paper ]; then
  INITS=${INITS:-xavier,gradinit,emergence}
  "$PY" -m emergence.train -m experiment=iwslt14_paper init=$INITS seed=${SEEDS:-0,1,2,3,4} "$@"
  exec "$PY" -m emergence.train -m experiment=wmt16_paper init=$INITS seed=${WMT_SEEDS:-0,1,2} "$@"
else
  exec "$PY" -m emergence.train -m experiment=translation_ding init=${INITS:-torch_default,xavier,kaiming,gradinit,emergence} \
    seed=${SEEDS:-0,1,2} hydra/launcher=local hydra.launcher.n_jobs=${JOBS:-2} "$@"
fi
