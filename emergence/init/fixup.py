"""Fixup (Zhang, Dauphin & Ma, ICLR 2019, arXiv 1901.09321, Sec. 3) for the CIFAR ResNets without normalization.

The paper's three rules, for a network with L residual branches of m weight layers each:

1. The classification layer (weight and bias) and the last layer of every residual branch are 0.
2. Every other weight layer gets a standard init (He normal); the weight layers inside the residual branches are
   then multiplied by L^(-1/(2m-2)) (the CIFAR BasicBlock has m = 2, so the factor is L^(-1/2)).
3. Scalar biases (0) before each convolution, linear layer and element-wise activation, and one scalar multiplier (1)
   per branch. These are architecture, not init: they exist only in a model built with ``arch.fixup=true``
   (emergence/models/resnet.py), and this initializer raises ``InitNotApplicable`` for any other model.

So at init every branch outputs 0 and each block computes relu(shortcut(x + 0)), which is shortcut(x) because its
input is already a ReLU output: the network is its shortcut path, and the logits are exactly 0. He's std follows the
official Fixup CIFAR code: sqrt(2 / fan_out) with fan_out = out_channels * kernel area (``mode: fan_in`` is the other
choice); the stem conv gets the same He init without the branch factor.

Stats: ``fixup/L``, ``fixup/m``, ``fixup/branch_scale`` and each weight's std. Contract: emergence/init/__init__.py.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emergence.init import InitNotApplicable
from emergence.init.layers import WEIGHT_TYPES, weight_stats

MODES = ("fan_out", "fan_in")
NOT_APPLICABLE = (
    "init=fixup needs a residual network built with Fixup's scalar biases and multipliers: "
    "use a ResNet without BN with arch.fixup=true (e.g. arch=resnet56_nobn arch.fixup=true)"
)


def branches(model: nn.Module) -> list[tuple[str, nn.Module, list[nn.Module]]]:
    """(name, block, weight layers of its branch in order) for every Fixup block (a module with ``fixup`` and
    ``scale``)."""
    out = []
    for name, m in model.named_modules():
        if getattr(m, "fixup", False) and isinstance(getattr(m, "scale", None), nn.Parameter):
            layers = [c for c in m.children() if isinstance(c, WEIGHT_TYPES)]  # registration = forward order
            out.append((name, m, layers))
    return out


def he_std(weight: torch.Tensor, mode: str) -> float:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return math.sqrt(2.0 / (fan_out if mode == "fan_out" else fan_in))


class Fixup:
    """Zero last branch layers and classifier, L^(-1/(2m-2)) on the other branch layers (see the module docstring)."""

    needs_data = False

    def __init__(self, mode: str = "fan_out"):
        if mode not in MODES:
            raise ValueError(f"init.mode must be one of {list(MODES)}; got {mode!r}")
        self.mode = mode

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple = (), generator=None, batches=None) -> dict:
        blocks = branches(model)
        classifier = getattr(model, "fc", None)
        if not getattr(model, "fixup", False) or not blocks or not isinstance(classifier, nn.Linear):
            raise InitNotApplicable(NOT_APPLICABLE)
        m = len(blocks[0][2])
        if m < 2 or any(len(layers) != m for _, _, layers in blocks):
            raise InitNotApplicable(
                f"init=fixup needs every residual branch to have the same m >= 2 layers; {NOT_APPLICABLE}"
            )
        n_branches = len(blocks)
        factor = n_branches ** (-1.0 / (2 * m - 2))
        in_branch = {id(layer) for _, _, layers in blocks for layer in layers}
        for module in model.modules():  # rule 2 outside the branches (the stem); rule 1 for the classifier below
            if isinstance(module, WEIGHT_TYPES) and id(module) not in in_branch:
                module.weight.normal_(0.0, he_std(module.weight, self.mode), generator=generator)
            if isinstance(module, WEIGHT_TYPES) and module.bias is not None:
                module.bias.zero_()
        for _, block, layers in blocks:
            for layer in layers[:-1]:
                layer.weight.normal_(0.0, he_std(layer.weight, self.mode) * factor, generator=generator)
            layers[-1].weight.zero_()
            block.scale.fill_(1.0)
        classifier.weight.zero_()
        if classifier.bias is not None:
            classifier.bias.zero_()
        for name, p in model.named_parameters():  # rule 3: the scalar biases start at 0
            if p.numel() == 1 and name.rpartition(".")[2].startswith("bias"):
                p.zero_()
        return {**weight_stats(model), "fixup/L": n_branches, "fixup/m": m, "fixup/branch_scale": factor}
