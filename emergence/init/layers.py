"""The one place that lists a model's weight layers, in forward-execution order, and resets the shared parameters.

Every initializer goes through this module, so they differ only in their rule for weights (STYLE.md §4):

- ``weight_modules(model)``: every Conv/Linear module (registration order; used by the baselines).
- ``trace_units(model, example, layers, **unit_options)``: the depth units of docs/method.md in **forward-execution
  order**, recorded by forward hooks during one no-grad forward pass in eval mode (never module-registration order).
  By default a unit is one Conv/Linear layer on the main path; a model may declare coarser units with
  ``unit_modules(**unit_options)`` (the Transformer: one unit per embedding and per sublayer block), and then every
  Linear/Conv/Embedding weight inside a unit module belongs to that unit; a declared unit marked ``"last"`` is put at
  the end of the order (a readout that is not called as a module, such as a tied embedding). Each unit records its
  stack (the first component of a declared unit's name: encoder / decoder). ``layers="classifier"`` keeps only the
  layers inside the model's ``classifier`` module (the companion paper's VGG-19 instance). Option-A shortcuts have no
  weights, so they never appear.
- ``reset_shared_(model, generator)``: biases 0, norm affine parameters 1 and 0, embeddings N(0, dim^-1/2) with the
  padding row zero (fairseq's convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

LAYER_SELECTIONS = ("all", "classifier")
WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


@dataclass
class Unit:
    """One depth unit: a name, its role and the weight tensors that share its exponent."""

    name: str
    role: str
    weights: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    stack: str = ""


def weight_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """All Conv/Linear modules with a weight, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_TYPES) and m.weight is not None]


def forward_order(model: nn.Module, candidates: list[tuple[str, nn.Module]], example: tuple) -> list[str]:
    """Names of ``candidates`` in the order of their first call during ``model(*example)``.

    Runs in eval mode under no_grad (no dropout draws, no BatchNorm buffer updates) and restores every training flag.
    """
    order: list[str] = []
    seen: set[str] = set()

    def hook_for(name):
        def hook(module, inputs, output):
            if name not in seen:
                seen.add(name)
                order.append(name)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in candidates]
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(*example)
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags.items():
            m.training = flag
    return order


def trace_units(model: nn.Module, example: tuple, layers: str = "all", **unit_options) -> list[Unit]:
    """Depth units in forward-execution order (see module docstring)."""
    if layers not in LAYER_SELECTIONS:
        raise ValueError(f"init.layers must be one of {list(LAYER_SELECTIONS)}; got {layers!r}")
    if hasattr(model, "unit_modules"):
        declared = list(model.unit_modules(**unit_options))
    elif unit_options:
        raise ValueError(
            f"{type(model).__name__} has no declared units, so the options {sorted(unit_options)} do not apply; "
            "they are for the Transformer (init.transformer.*): leave them at their defaults"
        )
    else:
        declared = None
    candidates = [(n, m) for n, m, *_ in declared] if declared else weight_modules(model)
    if layers == "classifier":
        candidates = [(n, m) for n, m in candidates if n.startswith("classifier.")]
        if not candidates:
            raise ValueError(
                f"init.layers=classifier: {type(model).__name__} has no layers inside a 'classifier' module; use a "
                "VGG (arch.classifier=three for the companion paper's three-layer head) or init.layers=all"
            )
    if not candidates:
        raise ValueError(f"{type(model).__name__} has no Conv/Linear weight layers to initialize")
    by_name = dict(candidates)
    last = [n for n, _, *rest in declared or [] if rest and rest[0] == "last" and n in by_name]
    order = forward_order(model, [(n, m) for n, m in candidates if n not in last], example) + last
    missing = [n for n in by_name if n not in order]
    if missing:
        raise RuntimeError(
            f"layers {missing} of {type(model).__name__} were not executed in the forward trace; the emergence ramp "
            "needs every unit on the main path. Declare the units explicitly with a unit_modules() method."
        )
    units: list[Unit] = []
    claimed: set[int] = set()  # tied tensors (shared embeddings) belong to the first unit in the order
    for i, name in enumerate(order):
        role = "input" if i == 0 else "readout" if i == len(order) - 1 else "hidden"
        if declared:
            unit = Unit(name=name, role=_role(name, role), stack=name.split(".")[0])
        else:
            unit = Unit(name=name, role=role)
        for sub_name, sub in by_name[name].named_modules():
            if isinstance(sub, (*WEIGHT_TYPES, nn.Embedding)) and sub.weight is not None:
                if id(sub.weight) not in claimed:
                    claimed.add(id(sub.weight))
                    unit.weights.append((f"{name}.{sub_name}".rstrip("."), sub.weight))
        units.append(unit)
    return units


def _role(name: str, default: str) -> str:
    for key in ("embed", "attn", "ffn"):
        if key in name:
            return {"embed": "embedding", "attn": "attention", "ffn": "ffn"}[key]
    return default


@torch.no_grad()
def reset_shared_(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Biases to 0, norm affine parameters to (1, 0), embeddings to N(0, dim^-1/2) with the padding row 0."""
    for m in model.modules():
        if isinstance(m, WEIGHT_TYPES) and m.bias is not None:
            m.bias.zero_()
        elif isinstance(m, NORM_TYPES):
            if getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Embedding):
            m.weight.normal_(0.0, m.embedding_dim**-0.5, generator=generator)
            if m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()


def weight_stats(model: nn.Module) -> dict[str, float]:
    """``<layer>/std`` of every Conv/Linear weight, for the runner's ``init/`` log."""
    return {f"{n}/std": float(m.weight.detach().float().std()) for n, m in weight_modules(model)}
