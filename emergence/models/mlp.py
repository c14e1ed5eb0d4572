"""Multi-layer perceptron for image classification.

``MLP(input_shape, num_classes, depth=6, width=256)`` is the 784-256x6-10 network of docs/method.md (7 weight layers on
28x28 inputs). ``depth`` counts hidden layers. Every activation is its own module so forward hooks (the emergence
measure) see each hidden layer. The model never sets its own weights beyond PyTorch's layer defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
NORMS = ("none", "batch")


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> activation] x depth -> Linear."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 6,
        width: int = 256,
        activation: str = "relu",
        norm: str = "none",
        bias: bool = True,
    ):
        super().__init__()
        if int(depth) < 1:
            raise ValueError(f"arch.depth must be an integer >= 1 (number of hidden layers); got {depth}")
        if int(width) < 1:
            raise ValueError(f"arch.width must be an integer >= 1; got {width}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"arch.activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        if norm not in NORMS:
            raise ValueError(f"arch.norm must be one of {list(NORMS)}; got {norm!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(input_shape)
        for _ in range(int(depth)):
            layers.append(nn.Linear(fan_in, int(width), bias=bias))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(int(width)))
            layers.append(ACTIVATIONS[activation]())
            fan_in = int(width)
        layers.append(nn.Linear(fan_in, num_classes, bias=bias))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
