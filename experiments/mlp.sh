#!/usr/bin/env bash
# MLP x {torch_default, xavier, kaiming, gradinit, emergence}, each at its selected LR (lr_select.sh), 10 paired seeds:
# the MLP rows of the paper's first-epoch comparison (README "Results").
#   SCALE=cpu       784-256x6-10 without BN on Fashion-MNIST, the 5-epoch cosine recipe run in full
#   SCALE=cpu-full  the same with and without BN (mlp, mlp_bn)
#   SCALE=paper     MNIST and Fashion-MNIST, with and without BN, the 20-epoch recipe
source "$(dirname "$0")/common.bash"
run_cells mlp
run_queue
