#!/usr/bin/env bash
# The initializers beyond the paper's comparison, each at its selected LR (lr_select.sh) with the comparison's paired
# seeds, so they get rows in the same tables (README "Results"):
#   SCALE=cpu       nothing (the MLP claims only)
#   SCALE=cpu-full  orthogonal, LSUV, MetaInit on the plain MLP (10 seeds); Fixup on resnet20_nobn with arch.fixup=true
#                   and T-Fixup on transformer_tiny (5 seeds each); MORE_INITS replaces the MLP list
#   SCALE=paper     the MLP ones on MNIST and Fashion-MNIST; Fixup on resnet110_nobn; T-Fixup on the IWSLT preset
source "$(dirname "$0")/common.bash"
run_cells more_inits
run_queue
