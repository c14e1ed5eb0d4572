#!/usr/bin/env bash
# Does the emergence ramp work through something simpler? (docs/method.md; reviewer questions) Each control is a tuned
# cell (its own LR from lr_select.sh) on the MLP's seeds (10) and, from SCALE=cpu-full on, on VGG-19 +/- BN (5 seeds):
#   - layer-wise LR control: Kaiming init, lr * alpha^(-2 e_l) per layer with the init's alpha rule (== the ramp's
#     dynamics on a plain ReLU net; nets without BN only)
#   - LR warm-up baseline: Kaiming init, linear warm-up over the first epoch
#   - the inverse ("low emergence") ramp
# The alpha and turning-point ablations are in alpha_sweep.sh.
source "$(dirname "$0")/common.bash"
run_cells mlp_controls
run_cells cnn_controls
run_queue
