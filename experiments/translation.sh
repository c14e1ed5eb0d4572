#!/usr/bin/env bash
# Transformer machine translation x inits, each at its selected LR, 5 paired seeds: the paper's Table 3
# (IWSLT'14 De-En BLEU after 80 epochs) and its CPU stand-in (README "Translation").
#   SCALE=cpu       not run
#   SCALE=cpu-full  a 2+2-layer Transformer of width 128 on the offline gettext De-En corpus (make data), 3 epochs:
#                   xavier, fairseq_default, emergence (TRANSLATION_INITS adds torch_default); val nll, token accuracy
#                   and chrF every epoch
#   SCALE=paper     iwslt14_paper: xavier, fairseq_default, gradinit, emergence (LR decay over 100k updates, stop at
#                   80 epochs, best checkpoint by val BLEU and the final one); then wmt16_paper, 3 seeds, at the
#                   recipe LR (GPU; data from scripts/prepare_iwslt14.py / prepare_wmt16.py)
# Translation tasks batch by tokens (data.max_tokens); trainer.batch_size is ignored.
source "$(dirname "$0")/common.bash"
if [ "$SCALE" = cpu-full ] && [ "${DRY_RUN:-0}" != 1 ] && [ ! -f "${EMERGENCE_DATA:-data}/gettext_de_en/meta.json" ]; then
  echo "[translation.sh] no corpus at ${EMERGENCE_DATA:-data}/gettext_de_en: run make data (scripts/prepare_gettext.py)" >&2
  exit 1
fi
run_cells translation
if [ "$SCALE" = paper ] && [ "$SMOKE" != 1 ]; then
  queue "${WMT_SEEDS:-0 1 2}" experiment=wmt16_paper init=xavier,fairseq_default,emergence
fi
run_queue
