"""Orthogonal initialization (Saxe, McClelland & Ganguli, ICLR 2014, arXiv 1312.6120) of every Conv/Linear weight.

Each weight, seen as a matrix of ``out`` rows by ``in * prod(kernel)`` columns (conv kernels flattened), is drawn as a
Haar-random semi-orthogonal matrix (QR of a Gaussian matrix with the sign of R's diagonal fixed, as
``torch.nn.init.orthogonal_`` does) times ``gain``. So every singular value equals ``gain``, and every entry has
mean 0 and variance exactly ``gain**2 / max(rows, cols)`` (the squared entries of a row or column of unit norm sum to
1). Saxe et al. show that such weights keep the input-output Jacobian of a deep linear network perfectly conditioned
(dynamical isometry); the gain compensates the nonlinearity's average contraction: ``calculate_gain(nonlinearity)``
(relu: sqrt(2), tanh: 5/3, linear: 1) unless ``gain`` is given.

Biases, norm parameters and embeddings are reset by ``layers.reset_shared_``. Contract: emergence/init/__init__.py.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emergence.init.layers import reset_shared_, weight_modules, weight_stats

NONLINEARITIES = ("relu", "leaky_relu", "linear", "tanh", "selu", "sigmoid")


def matrix_shape(weight: torch.Tensor) -> tuple[int, int]:
    """(rows, cols) of a weight with its kernel dimensions flattened into the columns."""
    return weight.shape[0], weight[0].numel()


class Orthogonal:
    """Semi-orthogonal weights times a gain per nonlinearity (see the module docstring)."""

    needs_data = False

    def __init__(self, nonlinearity: str = "relu", gain: float | None = None, a: float = 0.0):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"init.nonlinearity must be one of {list(NONLINEARITIES)}; got {nonlinearity!r}")
        if gain is not None and not (isinstance(gain, (int, float)) and math.isfinite(gain) and gain > 0):
            raise ValueError(f"init.gain must be null (from the nonlinearity) or a finite number > 0; got {gain!r}")
        self.nonlinearity = nonlinearity
        param = a if nonlinearity == "leaky_relu" else None
        self.gain = float(gain) if gain is not None else nn.init.calculate_gain(nonlinearity, param)

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple = (), generator=None, batches=None) -> dict[str, float]:
        reset_shared_(model, generator)
        for _, m in weight_modules(model):
            nn.init.orthogonal_(m.weight, gain=self.gain, generator=generator)
        return {**weight_stats(model), "gain": self.gain}
