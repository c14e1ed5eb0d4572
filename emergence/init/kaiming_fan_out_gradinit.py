"""GradInit's own CNN baseline init (zhuchen03/gradinit ``models/vgg.py``, ``resnet_cifar.py``; docs/gradinit.md):
Kaiming normal *fan_out* (relu) on every conv, N(0, ``classifier_std``) on the Linear layers inside a ``classifier``
module (VGG's head; 0.01 there), PyTorch's default Linear draw (kaiming_uniform, a = sqrt(5)) on any other Linear (as
GradInit's ResNet leaves its ``fc``), biases 0, norms (1, 0).

A named baseline so that the suite's runs can be compared with GradInit's published numbers, whose baselines use it
(the suite's own base init is Kaiming fan_in everywhere). Contract: see ``torch_default``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emergence.init.layers import reset_shared_, weight_modules, weight_stats


class KaimingFanOutGradInit:
    """Kaiming fan_out convs, N(0, classifier_std) classifier Linears, PyTorch default for other Linears."""

    needs_data = False

    def __init__(self, classifier_std: float = 0.01):
        if not (isinstance(classifier_std, (int, float)) and math.isfinite(classifier_std) and classifier_std > 0):
            raise ValueError(f"init.classifier_std must be a finite number > 0; got {classifier_std!r}")
        self.classifier_std = float(classifier_std)

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple = (), generator=None) -> dict[str, float]:
        reset_shared_(model, generator)
        for name, m in weight_modules(model):
            if not isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            elif name.startswith("classifier.") or ".classifier." in name:
                m.weight.normal_(0.0, self.classifier_std, generator=generator)
            else:
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
        return weight_stats(model)
