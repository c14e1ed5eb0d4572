"""MetaInit (Dauphin & Schoenholz, NeurIPS 2019): learn the norm of every weight tensor so that the gradient quotient
is small, by sign-SGD with momentum on the norms; the directions of the base init are kept.

Gradient quotient (the paper's Sec. 3): with g = grad L(theta) and H the Hessian, one gradient step changes the
gradient to g(theta - g) ~ g - H g, and

    GQ(L, theta) = (1 / N) * sum_i | (g_i - (H g)_i) / (g_i + eps * s_i) - 1 |,   s_i = 1 if g_i >= 0 else -1,

over all N entries of all trainable parameters (H g = grad of |g|^2 / 2, a Hessian-vector product). GQ = 0 means
the gradient does not change under its own step: the curvature is well matched to the scale of the gradient.

Each step draws a training batch, computes GQ (loss: the task's training loss; forward, backward with a graph, one
Hessian-vector product), back-propagates GQ to the weights, and updates the norm of every tensor with >= 2 dims
(weight matrices, conv kernels, embeddings; biases and norm parameters keep the base init):

    d = sign(<dGQ/dW, W> / |W|),   m <- momentum * m - lr * d,   W <- W * (|W| + m) / |W|.

Defaults follow the code listing in the paper: lr 0.1, momentum 0.9, eps 1e-5, 500 steps (``iterations``). That
listing draws Gaussian inputs and random labels; here the batches are real training batches from
``task.init_batches``, which also covers translation. Not in the paper: a
norm never drops below ``min_norm_ratio`` times its current value in one step (a step that would flip the sign of a
tensor is cut there; ``metainit/clamped`` counts them). Model in eval mode (no dropout; BatchNorm on its running
statistics, the identity at init), fp32, the math attention kernel (double backward), flags restored afterwards.

Cost is counted as GradInit's is: ``metainit/steps``, ``metainit/extra_forward`` (1 per step),
``metainit/extra_backward`` (3 per step: the gradient, the Hessian-vector product, and GQ's own gradient through
both), ``metainit/time_s``; ``self.history`` holds one record per step (GQ, loss). Contract:
emergence/init/__init__.py; ``device`` is ignored: MetaInit runs where the model is (the CPU at init).
"""

from __future__ import annotations

import logging
import math
import time

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from emergence.init import model_device
from emergence.init.layers import weight_stats

log = logging.getLogger(__name__)


def _grads(outputs: torch.Tensor, params: list[torch.Tensor], create_graph: bool) -> list[torch.Tensor]:
    grads = torch.autograd.grad(outputs, params, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def gradient_quotient(loss: torch.Tensor, params: list[torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    """GQ of ``loss`` at ``params`` (see the module docstring), differentiable with respect to ``params``."""
    g = _grads(loss, params, create_graph=True)
    hg = _grads(sum((gi * gi).sum() for gi in g) / 2, params, create_graph=True)
    total = sum(
        ((gi - hi) / (gi + eps * torch.where(gi >= 0, 1.0, -1.0).detach()) - 1).abs().sum() for gi, hi in zip(g, hg)
    )
    return total / sum(p.numel() for p in params)


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


class MetaInit:
    """Base init, then MetaInit's learned tensor norms (see the module docstring)."""

    needs_data = True

    def __init__(
        self,
        base,
        iterations: int = 500,
        lr: float = 0.1,
        momentum: float = 0.9,
        eps: float = 1e-5,
        batch_size: int = 128,
        min_norm_ratio: float = 0.01,
    ):
        if not callable(base):
            raise ValueError("init.base must be an initializer config with a _target_ (e.g. kaiming)")
        checks = {
            "iterations": (iterations, isinstance(iterations, int) and iterations >= 1, "an integer >= 1"),
            "lr": (lr, _positive(lr), "a finite number > 0"),
            "momentum": (momentum, isinstance(momentum, (int, float)) and 0 <= momentum < 1, "a number in [0, 1)"),
            "eps": (eps, _positive(eps), "a finite number > 0"),
            "batch_size": (batch_size, isinstance(batch_size, int) and batch_size >= 1, "an integer >= 1"),
            "min_norm_ratio": (min_norm_ratio, _positive(min_norm_ratio) and min_norm_ratio < 1, "a number in (0, 1)"),
        }
        for key, (value, ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f"init.{key} must be {allowed}; got {value!r}")
        self.base, self.iterations, self.lr, self.momentum = base, iterations, float(lr), float(momentum)
        self.eps, self.batch_size, self.min_norm_ratio = float(eps), batch_size, float(min_norm_ratio)
        self.history: list[dict] = []

    def __call__(self, model: nn.Module, example: tuple, generator=None, batches=None, device=None) -> dict:
        if batches is None:
            raise ValueError("MetaInit needs data: call it with batches=task.init_batches(batch_size, generator)")
        t0 = time.perf_counter()
        stats = {f"base/{k}": v for k, v in self.base(model, example, generator).items()}
        device = model_device(model)
        params = [p for p in model.parameters() if p.requires_grad]
        learned = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
        if not learned:
            raise ValueError(f"{type(model).__name__} has no weight tensor (>= 2 dims) for MetaInit to scale")
        start = [float(p.detach().norm()) for _, p in learned]
        memory = [0.0] * len(learned)
        flags = {m: m.training for m in model.modules()}
        self.history, clamped = [], 0
        try:
            model.eval()
            with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), torch.autocast(device.type, enabled=False):
                for step in range(self.iterations):
                    batch = next(batches).to(device)
                    loss = batch.loss(model(*batch.inputs))
                    gq = gradient_quotient(loss, params, self.eps)
                    grads = _grads(gq, [p for _, p in learned], create_graph=False)
                    with torch.no_grad():
                        for j, ((_, p), g) in enumerate(zip(learned, grads)):
                            norm = float(p.norm())
                            if norm == 0:
                                continue
                            direction = math.copysign(1.0, float((p * g).sum())) if float((p * g).sum()) else 0.0
                            memory[j] = self.momentum * memory[j] - self.lr * direction
                            new = norm + memory[j]
                            if new < self.min_norm_ratio * norm:
                                new, clamped = self.min_norm_ratio * norm, clamped + 1
                            p.mul_(new / norm)
                    self.history.append({"step": step, "gq": float(gq.detach()), "loss": float(loss.detach())})
        finally:
            for m, flag in flags.items():
                m.training = flag
        for (name, p), n0 in zip(learned, start):
            stats[f"metainit/{name}/norm_ratio"] = float(p.detach().norm()) / n0 if n0 else 1.0
        gqs = [h["gq"] for h in self.history]
        log.info("MetaInit: %d steps, GQ %.4g -> %.4g", len(gqs), gqs[0], gqs[-1])
        stats.update(weight_stats(model))
        stats.update(
            {
                "metainit/gq_first": gqs[0],
                "metainit/gq_last": gqs[-1],
                "metainit/steps": len(gqs),
                "metainit/extra_forward": len(gqs),
                "metainit/extra_backward": 3 * len(gqs),
                "metainit/clamped": clamped,
                "metainit/time_s": time.perf_counter() - t0,
            }
        )
        return stats
