"""Kaiming/He initialization (He et al. 2015) of every Conv/Linear weight.

std = gain(nonlinearity, a) / sqrt(fan), fan = fan_in or fan_out; the suite's default for MLPs and CNNs is normal,
fan_in, relu (docs/method.md#base-initializer). Biases, norm parameters and embeddings are reset by
``layers.reset_shared_``.
Contract: see ``torch_default``.
"""

from __future__ import annotations

import torch
from torch import nn

from emergence.init.layers import reset_shared_, weight_modules, weight_stats

DISTRIBUTIONS = ("uniform", "normal")
MODES = ("fan_in", "fan_out")
NONLINEARITIES = ("relu", "leaky_relu", "linear", "tanh", "selu")


class Kaiming:
    needs_data = False

    def __init__(self, distribution: str = "normal", mode: str = "fan_in", nonlinearity: str = "relu", a: float = 0.0):
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"init.distribution must be one of {list(DISTRIBUTIONS)}; got {distribution!r}")
        if mode not in MODES:
            raise ValueError(f"init.mode must be one of {list(MODES)}; got {mode!r}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"init.nonlinearity must be one of {list(NONLINEARITIES)}; got {nonlinearity!r}")
        self.distribution, self.mode, self.nonlinearity, self.a = distribution, mode, nonlinearity, float(a)

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple = (), generator=None) -> dict[str, float]:
        reset_shared_(model, generator)
        fill = nn.init.kaiming_normal_ if self.distribution == "normal" else nn.init.kaiming_uniform_
        for _, m in weight_modules(model):
            fill(m.weight, a=self.a, mode=self.mode, nonlinearity=self.nonlinearity, generator=generator)
        return weight_stats(model)
