#!/usr/bin/env bash
# Equal tuning budget (README "Results", principle 1): every tuned cell of the profile (baselines, GradInit, emergence
# and the controls; experiments/common.bash `cells`) at {0.5, 1, 2} x its recipe LR on the validation split, with
# selection seeds (100, 101 for MLPs, 100 otherwise) that the reported runs never use, under the experiment name
# lr_<experiment>. Then scripts/select_lr.py writes $RESULTS/lr_selection.csv/.md, which mlp.sh, controls.sh, cnn.sh
# and translation.sh read. Translation cells are chosen by validation nll (lower is better), the rest by val accuracy.
source "$(dirname "$0")/common.bash"
for family in mlp mlp_controls cnn cnn_controls head3 translation more_inits; do grid_cells $family; done
status=0
run_queue || status=$?
[ "$DRY_RUN" = 1 ] && exit 0
"$PY" scripts/select_lr.py select --runs "$RUNS_DIR" --out "$RESULTS" --criterion translation_gettext=val/nll:min \
  --criterion iwslt14_paper=val/nll:min
exit $status
