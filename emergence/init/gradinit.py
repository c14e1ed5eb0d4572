"""GradInit (Zhu et al., NeurIPS 2021, arXiv 2102.08098): learn one scale per parameter tensor before training.

The base init (a nested initializer, Kaiming by default) runs first; then every parameter tensor θ_i with a nonzero
norm gets a scalar α_i = 1 and the effective parameter α_i·θ_i⁰ (its direction never changes). For T iterations, on
S = B0 ∪ B1 and S̃ = B0 ∪ B2 (half-batches; docs/gradinit.md):

- g = ∇L(S; α·θ⁰); ‖g‖ is ℓ2 for an SGD target and ℓ1 for an Adam target. g is built with a graph (for the
  double backward) only where a constraint step is expected; see ``_learn``.
- ‖g‖ > γ: a constraint step, minimizing ‖g‖ itself (double backward).
- otherwise an objective step, minimizing L(S̃; α·θ⁰ − η·detach(A[g])) / η with A[g] = g/‖g‖₂, g, or sign(g).
- the scales follow ``RescaleAdam`` (``rescale_adam.py``): scalar Adam with a first moment per step kind, each
  bias-corrected by its own count, gradients clipped to ±clip, weights and norm γ clamped at ``min_scale``, biases at
  ``bias_min_scale`` (a bias whose scale reaches 0 stays 0, as in the official code), norm γ at most
  ``norm_max_scale``. The walker, the modes and the cache live in ``gradinit_parts.py``.

Then α·θ⁰ is written into the parameters. Everything goes through ``gradinit_parts.Slots`` (``functional_call``, no parameter
surgery), dropout is off, BatchNorm uses batch statistics on buffer copies (the model's buffers stay bit-identical),
fp32 and the math SDPA backend (double-differentiable) are forced, and every module flag is restored afterwards.
Zero tensors (zero biases, BN β) and frozen tensors get no scale and are logged as skipped; zero tensors still take part
in g and in the lookahead step, as in the official code (their scale gradient ⟨∂L/∂θ, 0⟩ would be 0 anyway).

Contract (emergence/init/__init__.py): ``GradInit(...)(model, example, generator, batches=batches, device=device)``.
``batches`` yields (B0, B1, B2) (``batch_kind = "thirds"``) drawn with ``generator`` itself (``data_stream = "init"``):
the base init draws first, so the base weights equal a plain base run, and the batches follow it in the same stream,
as in the official code's seeding (the committed GradInit results depend on it). It returns
``gradinit/<param>/scale`` per scaled tensor, step counts, first/last ‖g‖, last L0 and L1, the extra forward/backward
passes, ``gradinit/time_s``, the skipped tensors, the base init's stats under ``base/`` and the final ``<layer>/std``;
``self.history`` holds one record per iteration (kind, ‖g‖, L0, L1/η) for the runner to log. ``save(path)`` /
``load(model, path)`` cache the result (``initialize`` keeps it in the run dir as ``init_cache.pt``).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from torch import nn

from emergence.init.gradinit_parts import Entry, Slots, finish, gradinit_modes, load_cache, save_cache, walk
from emergence.init.layers import weight_stats
from emergence.init.rescale_adam import SECOND_MOMENTS, RescaleAdam

__all__ = ["Entry", "GradInit", "RescaleAdam", "walk"]
log = logging.getLogger(__name__)
TARGETS = ("sgd", "adam")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 and math.isfinite(x)


class GradInit:
    """Base init, then GradInit's learned per-tensor scales (see the module docstring)."""

    needs_data = True
    data_stream = "init"  # its batches come from the init generator, after the base init's draws (official seeding)
    batch_kind = "thirds"  # each draw: three disjoint parts (B0, B1, B2) of one random batch
    # When g is built with a graph: after a constraint step (default), always (the official code), never (recompute
    # in every constraint step). The results are the same; tests and benchmarks compare the three.
    _graph_first = "after_constraint"

    def __init__(
        self,
        base,
        gamma: float,
        target_optimizer: str = "sgd",
        normalize_grad: bool = True,
        eta: float = 0.1,
        lr: float = 1e-2,
        iterations: int = 390,
        batch_size: int = 128,
        min_scale: float = 0.01,
        bias_min_scale: float = 0.0,
        norm_max_scale: float | None = None,
        grad_clip: float | None = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        second_moment: str = "shared",
        overlap: bool = True,
        cache: bool = True,
    ):
        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        def flag(v) -> bool:
            return isinstance(v, bool)

        rules = {  # key: (value, test, what is allowed)
            "base": (base, callable, "an initializer config with a _target_ (e.g. kaiming)"),
            "gamma": (gamma, lambda v: number(v) and v > 0, "a number > 0 (the gradient-norm bound; .inf: none)"),
            "target_optimizer": (target_optimizer, lambda v: v in TARGETS, f"one of {list(TARGETS)}"),
            "eta": (eta, _positive, "a finite number > 0"),
            "lr": (lr, _positive, "a finite number > 0"),
            "eps": (eps, _positive, "a finite number > 0"),
            "iterations": (iterations, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
            "batch_size": (
                batch_size,
                lambda v: isinstance(v, int) and v >= 2 and v % 2 == 0,
                "an even integer >= 2 (S is two half-batches)",
            ),
            "min_scale": (min_scale, lambda v: number(v) and v >= 0, "a number >= 0"),
            "bias_min_scale": (bias_min_scale, lambda v: number(v) and v >= 0, "a number >= 0"),
            "norm_max_scale": (
                norm_max_scale,
                lambda v: v is None or (_positive(v) and v > min_scale),
                "null or a number > init.min_scale",
            ),
            "grad_clip": (grad_clip, lambda v: v is None or _positive(v), "null (no clipping) or a number > 0"),
            "betas": (
                betas,
                lambda v: hasattr(v, "__len__") and len(v) == 2 and all(number(b) and 0 <= b < 1 for b in v),
                "two numbers in [0, 1)",
            ),
            "second_moment": (second_moment, lambda v: v in SECOND_MOMENTS, f"one of {list(SECOND_MOMENTS)}"),
            "normalize_grad": (normalize_grad, flag, "true or false"),
            "overlap": (overlap, flag, "true or false"),
            "cache": (cache, flag, "true or false"),
        }
        for key, (value, ok, allowed) in rules.items():
            if not ok(value):
                raise ValueError(f"init.{key} must be {allowed}; got {value!r}")
        if math.isinf(gamma):
            log.warning("init.gamma=inf: the gradient-norm constraint never fires (docs/gradinit.md)")
        self.base, self.gamma, self.target_optimizer = base, float(gamma), target_optimizer
        self.normalize_grad, self.eta, self.lr = normalize_grad, float(eta), float(lr)
        # What one draw asks the task for (the contract's batch_size): S = B0 + B1 and S̃ = B0 + B2 of half-batches, or
        # (overlap false) S = B0 and S̃ = B1, full batches from a draw of twice the size.
        self.iterations, self.batch_size = iterations, batch_size if overlap else 2 * batch_size
        self.min_scale, self.bias_min_scale = float(min_scale), float(bias_min_scale)
        self.norm_max_scale = None if norm_max_scale is None else float(norm_max_scale)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.second_moment, self.overlap, self.cache = second_moment, overlap, cache
        self.history: list[dict] = []
        self._result: dict | None = None

    # ---- running ------------------------------------------------------------------------------------------------
    def __call__(
        self,
        model: nn.Module,
        example: tuple = (),
        generator: torch.Generator | None = None,
        *,
        batches=None,
        device: torch.device | str | None = None,
    ) -> dict:
        """Base init with ``generator`` (on the generator's device), then GradInit on ``device``; returns stats."""
        if batches is None:
            raise ValueError(
                "GradInit needs data: call it with batches=task.init_batches(init.batch_size, generator, 'thirds')"
            )
        t0 = time.perf_counter()
        device = torch.device(device) if device is not None else next(model.parameters()).device
        # The base init draws with `generator`, which may live on another device than the model.
        gen_device = generator.device if generator is not None else next(model.parameters()).device
        model.to(gen_device)
        base_stats = self.base(model, tuple(t.to(gen_device) for t in example), generator)
        model.to(device)
        stats = {f"base/{k}": v for k, v in base_stats.items()}
        stats.update(self._learn(model, batches, device))
        stats.update(weight_stats(model))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stats["gradinit/time_s"] = time.perf_counter() - t0  # kept in the cache, so a resumed run still reports it
        self._result = {
            "params": {n: p.detach().cpu().clone() for n, p in model.named_parameters()},
            "stats": dict(stats),
            "history": list(self.history),
        }
        return stats

    def _pair(self, draw, device: torch.device):
        """(S, a function giving S̃) from one draw (B0, B1, B2): S̃ is only built for an objective step."""
        b0, b1, b2 = (b.to(device) for b in draw)
        if self.overlap:
            return b0 + b1, lambda: b0 + b2
        return b0, lambda: b1  # three disjoint full batches

    def _norm(self, grads) -> torch.Tensor:
        if self.target_optimizer == "adam":
            return sum(g.abs().sum() for g in grads)
        return torch.sqrt(sum(g.square().sum() for g in grads))

    def _direction(self, grads, norm: torch.Tensor) -> list[torch.Tensor]:
        """A[g]: the first step of the target optimizer per unit learning rate (docs/gradinit.md)."""
        if self.target_optimizer == "adam":
            return [g.sign() for g in grads]
        if self.normalize_grad:
            inv = 1 / norm if float(norm) > 0 else torch.zeros((), dtype=norm.dtype)  # a flat loss takes no step
            return torch._foreach_mul(list(grads), inv)
        return list(grads)

    def _learn(self, model: nn.Module, batches, device: torch.device) -> dict:
        entries, skipped = walk(model)
        if skipped:  # every skipped tensor is named (also in the stats as gradinit/skipped)
            log.info("GradInit skips %d tensors: %s", len(skipped), ", ".join(f"{n} ({why})" for n, why in skipped))
        scaled = [e for e in entries if e.scaled]
        if not scaled:
            raise ValueError(f"{type(model).__name__} has no nonzero trainable tensor for GradInit to scale")
        params = dict(model.named_parameters())
        names = [e.name for e in entries]
        index = {e.name: k for k, e in enumerate(scaled)}
        slot = [index.get(n) for n in names]  # position of the tensor's scale, None for zero tensors
        theta0 = [params[n].detach().to(device, torch.float32).clone() for n in names]
        taking = set(names)
        const = {n: p.detach().float() for n, p in params.items() if n not in taking}  # frozen tensors
        # BatchNorm in train mode writes its running stats into whatever buffers it is given: give it copies.
        const.update(
            {
                n: b.detach().clone().float() if b.is_floating_point() else b.detach().clone()
                for n, b in model.named_buffers()
            }
        )
        before = {n: b.detach().clone() for n, b in model.named_buffers()}
        top = math.inf if self.norm_max_scale is None else float(self.norm_max_scale)
        f64 = torch.float64
        lower = torch.tensor([self.bias_min_scale if e.group == "bias" else self.min_scale for e in scaled], dtype=f64)
        upper = torch.tensor([top if e.group == "norm" else math.inf for e in scaled], dtype=f64)
        opt = RescaleAdam(len(scaled), self.lr, self.betas, self.eps, self.grad_clip, lower, upper, self.second_moment)

        def effective(alpha: torch.Tensor) -> list[torch.Tensor]:
            """α·θ⁰ per tensor; a zero tensor is a leaf of its own (it takes part in g, with no scale)."""
            parts = alpha.unbind()
            return [t * parts[k] if k is not None else t.detach().requires_grad_() for t, k in zip(theta0, slot)]

        call = Slots(model)  # functional_call's semantics, cheaper per call

        def loss(tensors, batch) -> torch.Tensor:
            out = call({**const, **dict(zip(names, tensors))}, tuple(batch.inputs))
            return batch.loss(out)

        self.history = []
        n_fwd = n_bwd = 0
        # g needs a graph only in a constraint step, which is known only once g is there. Constraint steps come in
        # runs, so g is built with a graph when the previous step was a constraint step (one backward, as the
        # official code), otherwise without one and the forward graph is kept for a second, graph-building
        # backward if the constraint fires after all. Both give the same g, so the results do not depend on it.
        with_graph = self._graph_first == "always"
        with gradinit_modes(model, device):
            for it in range(self.iterations):
                s, s_tilde = self._pair(next(batches), device)
                a = opt.alpha.to(device, torch.float32).requires_grad_()
                tensors = effective(a)
                l0 = loss(tensors, s)
                g = torch.autograd.grad(l0, tensors, create_graph=with_graph, retain_graph=True)
                norm = self._norm(g)
                n_fwd, n_bwd = n_fwd + 1, n_bwd + 1
                record = {"step": it, "grad_norm": float(norm.detach()), "loss0": float(l0.detach())}
                record["loss1_over_eta"] = None
                if record["grad_norm"] > self.gamma:
                    if not with_graph:
                        g = torch.autograd.grad(l0, tensors, create_graph=True)
                        norm, n_bwd = self._norm(g), n_bwd + 1
                    (da,) = torch.autograd.grad(norm, a)
                    record["kind"], n_bwd = "constraint", n_bwd + 1
                else:
                    g, norm = [x.detach() for x in g], norm.detach()
                    # the lookahead reuses S's effective tensors (same values, same graph to a); foreach ops, one
                    # kernel launch per list, compute what the per-tensor ops did, element by element
                    step = torch._foreach_mul(self._direction(g, norm), self.eta)
                    lookahead = torch._foreach_sub(tensors, step)
                    objective = loss(lookahead, s_tilde()) / self.eta
                    (da,) = torch.autograd.grad(objective, a)
                    record["kind"], record["loss1_over_eta"] = "objective", float(objective.detach())
                    n_fwd, n_bwd = n_fwd + 1, n_bwd + 1
                del l0, g, norm, tensors  # free the S graph before the next iteration
                opt.step(da, record["kind"])
                if self._graph_first == "after_constraint":
                    with_graph = record["kind"] == "constraint"
                self.history.append(record)
        return finish(model, entries, slot, theta0, opt.alpha, before, skipped, self.history, self.eta, n_fwd, n_bwd)

    # ---- caching (docs/gradinit.md) ---------------------------------------------------------------------------
    def save(self, path: str | Path, key: str | None = None) -> None:
        """Store the learned parameters, stats and history in ``path`` (atomically)."""
        if self._result is None:
            raise RuntimeError("GradInit.save() before GradInit ran: nothing to cache")
        save_cache(path, self._result, key)

    def load(self, model: nn.Module, path: str | Path, key: str | None = None) -> dict | None:
        """Put a cached result into ``model``; None when there is no cache or it was made for another ``key``."""
        blob = load_cache(model, path, key)
        if blob is None:
            return None
        self.history = list(blob.get("history", []))
        self._result = {k: blob[k] for k in ("params", "stats", "history") if k in blob}
        return {**blob.get("stats", {}), "gradinit/cached": 1}
