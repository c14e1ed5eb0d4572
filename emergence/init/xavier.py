"""Xavier/Glorot initialization (Glorot & Bengio 2010) of every Conv/Linear weight.

std = gain * sqrt(2 / (fan_in + fan_out)); ``distribution`` uniform draws from U(-a, a) with a = sqrt(3) * std.
Biases, norm parameters and embeddings are reset by ``layers.reset_shared_``. Contract: see ``torch_default``.
"""

from __future__ import annotations

import torch
from torch import nn

from emergence.init.layers import reset_shared_, weight_modules, weight_stats

DISTRIBUTIONS = ("uniform", "normal")


class Xavier:
    needs_data = False

    def __init__(self, distribution: str = "uniform", gain: float = 1.0):
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"init.distribution must be one of {list(DISTRIBUTIONS)}; got {distribution!r}")
        if not gain > 0:
            raise ValueError(f"init.gain must be > 0; got {gain}")
        self.distribution = distribution
        self.gain = float(gain)

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple = (), generator=None) -> dict[str, float]:
        reset_shared_(model, generator)
        fill = nn.init.xavier_uniform_ if self.distribution == "uniform" else nn.init.xavier_normal_
        for _, m in weight_modules(model):
            fill(m.weight, gain=self.gain, generator=generator)
        return weight_stats(model)
