"""Optimizers, learning-rate schedules, and the layer-wise-LR control of docs/method.md.

- ``build_optimizer(model, name=..., lr=..., ...)``: SGD (momentum, Nesterov) or Adam/AdamW. With
  ``decay_norm_and_bias=False`` (GradInit's CIFAR recipe) norm parameters and biases get no weight decay.
  ``bias_scale_lr``: biases and scalar parameters (one element, or "scale" in the name) train at this lr instead
  (GradInit's no-BN ResNet recipe: 0.01 = lr / 10; the schedule scales it like every other group).
- ``layerwise_lr``: the control that tests the paper's explanation. The base init is left untouched and unit l of the
  emergence ramp gets lr * alpha^(-2 e_l) and weight decay wd * alpha^(2 e_l) with SGD (exactly the dynamics of the
  rescaled plain ReLU net), lr * alpha^(-e_l) with Adam. Same units, exponents and alpha rule as the init
  (``emergence.init.emergence.ramp_units``): ``{}`` or ``{max_factor: 2}`` derives alpha from the traced depth,
  ``{alpha: a}`` fixes it.
- ``build_schedule(optimizer, steps_per_epoch, epochs, name=..., warmup_epochs=...)``: a per-step LambdaLR: constant,
  cosine (to ``min_lr_factor``) or linear decay, after an optional linear warm-up from 0. Its length is ``epochs``
  epochs (``trainer.epochs``; a run cut short by ``trainer.max_steps`` keeps the long schedule's LR at every step), or
  ``total_updates`` optimizer steps when set (GradInit's IWSLT recipe decays over 100k updates).
Configs call both through Hydra with ``_partial_: true``; the runner supplies the model and step counts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emergence.init.emergence import check_ramp, ramp_units
from emergence.init.layers import NORM_TYPES

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear")


def _is_bias_or_scale(name: str, p: torch.Tensor) -> bool:
    leaf = name.rpartition(".")[2]
    return "bias" in leaf or "scale" in leaf or p.numel() == 1


def _param_groups(model, weight_decay, decay_norm_and_bias, lr, scales, bias_scale_lr=None):
    """Parameter groups: (lr, wd) per tensor, merged by equal settings; no-decay for norm/bias if asked."""
    no_decay = set()
    if not decay_norm_and_bias:
        for m in model.modules():
            if isinstance(m, NORM_TYPES):
                no_decay.update(id(p) for p in m.parameters(recurse=False))
        no_decay.update(id(p) for n, p in model.named_parameters() if n.endswith("bias"))
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr_scale, wd_scale = scales.get(id(p), (1.0, 1.0))
        wd = 0.0 if id(p) in no_decay else weight_decay * wd_scale
        p_lr = bias_scale_lr if bias_scale_lr is not None and _is_bias_or_scale(name, p) else lr * lr_scale
        groups.setdefault((p_lr, wd), []).append(p)
    return [{"params": ps, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), ps in groups.items()]


def layerwise_scales(model, example, power=2.0, **ramp):
    """{id(weight): (lr scale, wd scale)} of the layer-wise-LR control: lr * alpha^(-power e), wd * alpha^(power e).

    ``ramp``: the emergence init's keys (alpha, max_factor, exponent_rule, inverse, turning_point, layers,
    transformer; ``check_ramp``).
    """
    units, exps, alpha = ramp_units(model, example, check_ramp(ramp, "optim.layerwise_lr"))
    scales = {}
    for unit, e in zip(units, exps):
        for _, w in unit.weights:
            scales[id(w)] = (alpha ** (-power * e), alpha ** (power * e))
    return scales


def build_optimizer(
    model: nn.Module,
    *,
    name: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decay_norm_and_bias: bool = False,
    layerwise_lr: dict | None = None,
    bias_scale_lr: float | None = None,
    example: tuple | None = None,
) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {list(OPTIMIZERS)}; got {name!r}")
    if not lr >= 0:
        raise ValueError(f"optim.lr must be >= 0; got {lr}")
    if not weight_decay >= 0 or not 0 <= momentum < 1:
        raise ValueError(
            f"optim.weight_decay must be >= 0 and optim.momentum in [0, 1); got {weight_decay}, {momentum}"
        )
    if bias_scale_lr is not None and not (isinstance(bias_scale_lr, (int, float)) and bias_scale_lr >= 0):
        raise ValueError(f"optim.bias_scale_lr must be null or a number >= 0; got {bias_scale_lr!r}")
    scales = {}
    if layerwise_lr is not None:
        if example is None:
            raise ValueError("optim.layerwise_lr needs example inputs to trace the layer order")
        spec = dict(layerwise_lr)
        if spec.get("alpha") is not None and not spec["alpha"] > 0:
            raise ValueError(
                f"optim.layerwise_lr.alpha must be > 0 (or absent: the max_factor rule); got {spec['alpha']}"
            )
        spec.setdefault("power", 2.0 if name == "sgd" else 1.0)  # SGD: alpha^-2e exactly; Adam: ~alpha^-e
        scales = layerwise_scales(model, example, **spec)
    groups = _param_groups(model, weight_decay, decay_norm_and_bias, lr, scales, bias_scale_lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(groups, lr=lr, betas=tuple(betas), eps=eps)


def lr_factor(step: int, total: int, warmup: int, name: str, min_lr_factor: float) -> float:
    """Multiplier of the base lr before optimizer step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if name == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if name == "cosine":
        return min_lr_factor + (1 - min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    return min_lr_factor + (1 - min_lr_factor) * (1 - progress)


def build_schedule(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
    *,
    name: str = "constant",
    warmup_epochs: float = 0.0,
    min_lr_factor: float = 0.0,
    total_updates: int | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A schedule stepped once per optimizer step, over ``total_updates`` steps or else ``epochs`` epochs."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule.name must be one of {list(SCHEDULES)}; got {name!r}")
    if warmup_epochs < 0 or not 0 <= min_lr_factor <= 1:
        raise ValueError("schedule.warmup_epochs must be >= 0 and schedule.min_lr_factor in [0, 1]")
    if total_updates is not None and not (isinstance(total_updates, int) and total_updates >= 1):
        raise ValueError(f"schedule.total_updates must be null or an integer >= 1; got {total_updates!r}")
    total = max(1, total_updates if total_updates is not None else steps_per_epoch * epochs)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, name, min_lr_factor)
    )
