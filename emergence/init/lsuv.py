"""LSUV, layer-sequential unit-variance initialization (Mishkin & Matas, ICLR 2016, arXiv 1511.06422, Algorithm 1).

1. A base init, orthogonal by default (Saxe et al. 2014; the paper's pre-initialization).
2. One training batch is drawn. For each Conv/Linear layer in forward-execution order: run the model on the batch,
   take the variance of the layer's output (over every element of the output tensor, as the authors' code does), and
   while |var - 1| >= ``tolerance`` and fewer than ``max_iterations`` passes were made, divide the layer's weight by
   sqrt(var). The paper's values: tolerance 0.1, at most 10 iterations (T_max); it reports 1-5 iterations suffice.

Choices that the paper leaves open, made here: the model runs in eval mode (no dropout; BatchNorm with its running
statistics, which are the identity at init), so the scaling is that of the deterministic network; biases are 0
(``reset_shared_``), so dividing a weight divides the layer's output exactly and a plain layer converges in one pass;
a layer whose output variance is 0 (dead input) is left alone and reported; each pass stops the forward pass once the
layer's output is recorded. A layer called twice in one forward pass is measured at its first call.

Data: ``needs_data = True``; ``batches`` yields ``InitBatch`` objects (emergence/init/__init__.py), and only the first
is used; ``device`` is ignored: LSUV runs where the model is (the CPU at init), so its weights are the same on every
device. Stats: ``lsuv/<layer>/scale`` (total factor), ``lsuv/<layer>/var`` (final output variance),
``lsuv/<layer>/iterations``, ``lsuv/steps`` (forward passes), ``lsuv/time_s``, ``lsuv/not_converged`` and the base
init's stats under ``base/``.
"""

from __future__ import annotations

import logging
import math
import time

import torch
from torch import nn

from emergence.init import model_device
from emergence.init.layers import forward_order, weight_modules, weight_stats

log = logging.getLogger(__name__)


class _Recorded(Exception):
    """Raised by the hook to stop the forward pass once the layer's output is known."""


def output_variance(model: nn.Module, layer: nn.Module, inputs: tuple) -> float:
    """Variance of ``layer``'s output (its first call) when ``model(*inputs)`` runs; stops the pass there."""
    seen: list[float] = []

    def hook(module, args, output):
        seen.append(float(output.detach().double().var()))
        raise _Recorded

    handle = layer.register_forward_hook(hook)
    try:
        model(*inputs)
    except _Recorded:
        pass
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError(f"LSUV: layer {layer} was not called in the forward pass")
    return seen[0]


class LSUV:
    """Base init, then per-layer rescaling to unit output variance on one batch (see the module docstring)."""

    needs_data = True

    def __init__(self, base, tolerance: float = 0.1, max_iterations: int = 10, batch_size: int = 256):
        if not callable(base):
            raise ValueError("init.base must be an initializer config with a _target_ (e.g. orthogonal)")
        if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
            raise ValueError(f"init.tolerance must be a number in (0, 1); got {tolerance!r}")
        if not (isinstance(max_iterations, int) and max_iterations >= 1):
            raise ValueError(f"init.max_iterations must be an integer >= 1; got {max_iterations!r}")
        if not (isinstance(batch_size, int) and batch_size >= 2):
            raise ValueError(f"init.batch_size must be an integer >= 2; got {batch_size!r}")
        self.base, self.tolerance = base, float(tolerance)
        self.max_iterations, self.batch_size = max_iterations, batch_size

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple, generator=None, batches=None, device=None) -> dict:
        if batches is None:
            raise ValueError("LSUV needs data: call it with batches=task.init_batches(batch_size, generator)")
        t0 = time.perf_counter()
        stats = {f"base/{k}": v for k, v in self.base(model, example, generator).items()}
        inputs = next(iter(batches)).to(model_device(model)).inputs
        candidates = weight_modules(model)
        modules = dict(candidates)
        order = forward_order(model, candidates, example)
        flags = {m: m.training for m in model.modules()}
        steps, not_converged = 0, []
        try:
            model.eval()
            for name in order:
                layer, scale, rescales = modules[name], 1.0, 0
                var = output_variance(model, layer, inputs)
                steps += 1
                while abs(var - 1) >= self.tolerance and rescales < self.max_iterations and 0 < var < math.inf:
                    layer.weight.div_(math.sqrt(var))
                    scale, rescales = scale / math.sqrt(var), rescales + 1
                    var = output_variance(model, layer, inputs)
                    steps += 1
                if abs(var - 1) >= self.tolerance:
                    not_converged.append(name)
                stats.update(
                    {f"lsuv/{name}/scale": scale, f"lsuv/{name}/var": var, f"lsuv/{name}/iterations": rescales}
                )
        finally:
            for m, flag in flags.items():
                m.training = flag
        if not_converged:
            log.warning("LSUV: output variance of %s not within %g of 1", ", ".join(not_converged), self.tolerance)
        stats.update(weight_stats(model))
        stats.update(
            {
                "lsuv/steps": steps,
                "lsuv/layers": len(order),
                "lsuv/not_converged": ",".join(not_converged),
                "lsuv/time_s": time.perf_counter() - t0,
            }
        )
        return stats
