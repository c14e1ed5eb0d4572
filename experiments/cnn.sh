#!/usr/bin/env bash
# CNNs with and without BN x {xavier, kaiming, gradinit, emergence} (CNN_INITS; SCALE=paper adds torch_default),
# each at its selected LR, 5 paired seeds (README "Results"); plus the companion paper's classifier-only instance
# (VGG-19 with the three-layer classifier, init=classifier_good|medium|low) where its presets exist.
#   SCALE=cpu       not run (the CPU profile covers the MLP claims)
#   SCALE=cpu-full  VGG-19 and ResNet-20 (+/- BN) at width 1/4 on a 10k Fashion-MNIST subset: the recipe's 200-epoch
#                   cosine with trainer.max_steps = 2 epochs, so every step has the long schedule's LR; accuracy read
#                   every 20 steps, after epoch 1 and at the end. GradInit takes 78 iterations (1.5 passes over the
#                   10k images, the data budget of its 390 iterations over CIFAR's 50k)
#   SCALE=paper     CIFAR-10 (5,000 training images held out for validation), VGG-19 and ResNet-110 (+/- BN),
#                   GradInit's 200-epoch recipe (GPU; add hydra/launcher=slurm trainer.device=cuda); also GradInit's
#                   own baseline init (kaiming_fan_out_gradinit)
source "$(dirname "$0")/common.bash"
run_cells cnn
run_cells head3
run_queue
