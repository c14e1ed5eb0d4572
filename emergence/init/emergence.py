"""Emergence-promoting initialization (Li, George, Silva, arXiv 2407.19044, eq. 10; docs/method.md).

A base initializer (a nested config; by default the model family's convention, ``family_default``) is applied first;
then depth unit l of the L units, in forward-execution order (``layers.trace_units``), has its weights multiplied by
alpha ** e_l:

- ``exponent_rule="symmetric"`` (default): e_l = l - (L - 1) / 2. Odd L = 2n + 1 gives -n..n, exactly eq. 10
  (first layer divided by alpha^n, middle unchanged, last multiplied by alpha^n); even L gives half-integers.
  sum(e) = 0.
- ``exponent_rule="pivot"``: e_l = l - floor(L / 2) (the third-party C implementation's convention).
- ``turning_point=t``: e_l = l - t (the turning-point ablation; the product of scales is then no longer 1).
- ``inverse=True``: -e_l, the paper's "low emergence" control.

**alpha as a rule.** The extreme factor alpha^max|e_l| (the first layer's shrink and the last layer's gain) grows
with depth, so one alpha does not transfer across architectures. With ``alpha=None`` (the default) alpha is derived
from the traced units: alpha = max_factor^(1 / max|e_l|), which is max_factor^(2 / (L - 1)) for the symmetric
exponents; an explicit ``alpha`` overrides the rule. The stats log ``alpha``, ``n_units`` (L) and
``alpha_max_factor`` (the extreme factor reached) for every run.

**Which layers.** ``layers="all"``: every unit; ``"classifier"``: only the layers inside the model's ``classifier``
module (the companion paper's VGG-19 instance: its three classifier Linears with alpha = 2 give W1/2, W2, W3*2).
**Transformer options** (``transformer``; docs/method.md): ``ramp`` joint (one ramp over encoder then decoder) or
per_stack (a symmetric ramp per stack; the rule's alpha then uses the longer stack), ``include_attention`` and
``include_embeddings`` (excluded tensors keep the base init and are not counted in L), ``tied_embedding`` first (a
tied embedding sits where it is first used) or last (it is the readout, the last unit). They raise on other models.

alpha = 1 leaves the base init bit for bit (every factor is exactly 1.0). Applying the rescale twice to one model is
almost always a bug, so it raises unless ``allow_reapply=True``. Contract: see ``torch_default``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emergence.config import ConfigError
from emergence.init.layers import LAYER_SELECTIONS, Unit, trace_units

CONVENTIONS = ("symmetric", "pivot")
RAMPS = ("joint", "per_stack")
TRANSFORMER_DEFAULTS = {
    "ramp": "joint",
    "include_attention": True,
    "include_embeddings": True,
    "tied_embedding": "first",
}
_APPLIED = "_emergence_init_applied"


def exponents(n_units: int, convention: str = "symmetric", turning_point: float | None = None) -> list[float]:
    """The exponent e_l of each of ``n_units`` units (before ``inverse``)."""
    if n_units < 1:
        raise ValueError(f"need at least one weight layer; got {n_units}")
    if convention not in CONVENTIONS:
        raise ValueError(f"init.exponent_rule must be one of {list(CONVENTIONS)}; got {convention!r}")
    if turning_point is not None:
        pivot = float(turning_point)
    elif convention == "symmetric":
        pivot = (n_units - 1) / 2
    else:
        pivot = float(n_units // 2)
    return [l - pivot for l in range(n_units)]


def rule_alpha(exps: list[float], max_factor: float) -> float:
    """alpha = max_factor^(1 / max|e|): the alpha whose extreme factor is ``max_factor`` (1 for a single unit)."""
    top = max(abs(e) for e in exps)
    return 1.0 if top == 0 else float(max_factor) ** (1.0 / top)


def check_transformer_options(options: dict | None) -> dict:
    """The full ``init.transformer`` dict, validated; raises naming the key."""
    merged = {**TRANSFORMER_DEFAULTS, **dict(options or {})}
    unknown = sorted(set(merged) - set(TRANSFORMER_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown init.transformer keys {unknown}; known: {sorted(TRANSFORMER_DEFAULTS)}")
    if merged["ramp"] not in RAMPS:
        raise ValueError(f"init.transformer.ramp must be one of {list(RAMPS)}; got {merged['ramp']!r}")
    if merged["tied_embedding"] not in ("first", "last"):
        raise ValueError(f"init.transformer.tied_embedding must be first or last; got {merged['tied_embedding']!r}")
    for key in ("include_attention", "include_embeddings"):
        if not isinstance(merged[key], bool):
            raise ValueError(f"init.transformer.{key} must be true or false; got {merged[key]!r}")
    return merged


def unit_exponents(
    units: list[Unit],
    ramp: str = "joint",
    convention: str = "symmetric",
    turning_point: float | None = None,
    inverse: bool = False,
) -> list[float]:
    """e_l per unit: one ramp over all units, or (``per_stack``) one per stack (a turning point counts per stack)."""
    groups = (
        [units]
        if ramp == "joint"
        else [[u for u in units if u.stack == s] for s in dict.fromkeys(u.stack for u in units)]
    )
    by_unit = {}
    for group in groups:
        by_unit.update(zip((id(u) for u in group), exponents(len(group), convention, turning_point)))
    exps = [by_unit[id(u)] for u in units]
    return [-e for e in exps] if inverse else exps


RAMP_DEFAULTS = {  # the ramp's options: the init's keys besides base and allow_reapply, and those of optim.layerwise_lr
    "alpha": None,
    "max_factor": 2.0,
    "exponent_rule": "symmetric",
    "inverse": False,
    "turning_point": None,
    "layers": "all",
    "transformer": None,
}


def check_ramp(options: dict, prefix: str = "init") -> dict:
    """The ramp's options with ``RAMP_DEFAULTS`` filled in, validated; raises ValueError naming ``<prefix>.<key>``."""
    unknown = sorted(set(options) - set(RAMP_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown {prefix} keys {unknown}; known: {sorted(RAMP_DEFAULTS)}")
    o = {**RAMP_DEFAULTS, **options}
    alpha, max_factor = o["alpha"], o["max_factor"]
    if alpha is not None and not (
        isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and math.isfinite(alpha) and alpha > 0
    ):
        raise ValueError(
            f"{prefix}.alpha must be null (derived from {prefix}.max_factor) or a finite number > 0 (1 = the base "
            f"init, > 1 promotes emergence); got {alpha}"
        )
    if not (isinstance(max_factor, (int, float)) and math.isfinite(max_factor) and max_factor > 0):
        raise ValueError(f"{prefix}.max_factor must be a finite number > 0 (the extreme factor); got {max_factor}")
    if o["exponent_rule"] not in CONVENTIONS:
        raise ValueError(f"{prefix}.exponent_rule must be one of {list(CONVENTIONS)}; got {o['exponent_rule']!r}")
    if o["layers"] not in LAYER_SELECTIONS:
        raise ValueError(f"{prefix}.layers must be one of {list(LAYER_SELECTIONS)}; got {o['layers']!r}")
    o["max_factor"], o["inverse"] = float(max_factor), bool(o["inverse"])
    o["transformer"] = check_transformer_options(o["transformer"])
    return o


def ramp_units(model: nn.Module, example: tuple, ramp: dict) -> tuple[list[Unit], list[float], float]:
    """(units, exponents, alpha) of the ramp (options from ``check_ramp``); shared by the init and the layer-wise-LR
    control (``optim.py``)."""
    options = ramp["transformer"]
    unit_options = {k: v for k, v in options.items() if k != "ramp" and v != TRANSFORMER_DEFAULTS[k]}
    if options["ramp"] != "joint" and not hasattr(model, "unit_modules"):
        raise ConfigError(f"init.transformer.ramp=per_stack is for the Transformer only, not {type(model).__name__}")
    try:
        units = trace_units(model, example, ramp["layers"], **unit_options)
    except ValueError as exc:  # an option that does not fit this model: a configuration error (exit code 2)
        raise ConfigError(str(exc)) from exc
    exps = unit_exponents(units, options["ramp"], ramp["exponent_rule"], ramp["turning_point"], ramp["inverse"])
    alpha = ramp["alpha"]
    if alpha is None:
        alpha = rule_alpha(exps, ramp["max_factor"])
    return units, exps, float(alpha)


class Emergence:
    """Base init, then the alpha ** e ramp over the depth units."""

    needs_data = False

    def __init__(
        self,
        base,
        alpha: float | None = None,
        max_factor: float = 2.0,
        exponent_rule: str = "symmetric",
        inverse: bool = False,
        turning_point: float | None = None,
        layers: str = "all",
        transformer: dict | None = None,
        allow_reapply: bool = False,
    ):  # the keys are spelled out (not **ramp) so that a misspelt init key is caught (config.check_options)
        ramp = dict(alpha=alpha, max_factor=max_factor, exponent_rule=exponent_rule, inverse=inverse,
                    turning_point=turning_point, layers=layers, transformer=transformer)  # fmt: skip
        self.ramp = check_ramp(ramp)
        if not callable(base):
            raise ValueError("init.base must be an initializer config with a _target_ (e.g. init@init.base=kaiming)")
        self.base, self.allow_reapply = base, bool(allow_reapply)

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple, generator=None) -> dict[str, float]:
        if getattr(model, _APPLIED, False) and not self.allow_reapply:
            raise RuntimeError(
                "the emergence rescale was already applied to this model; applying it twice compounds the ramp. "
                "Build a fresh model, or pass allow_reapply=True if this is intended."
            )
        stats = dict(self.base(model, example, generator))
        units, exps, alpha = ramp_units(model, example, self.ramp)
        for unit, e in zip(units, exps):
            factor = alpha**e
            for name, weight in unit.weights:
                weight.mul_(factor)
                stats[f"{name}/std"] = float(weight.float().std())
            stats[f"{unit.name}/scale"] = factor
            stats[f"{unit.name}/exponent"] = e
        stats["alpha"] = alpha
        stats["alpha_from_rule"] = float(self.ramp["alpha"] is None)
        stats["n_units"] = len(units)
        stats["alpha_max_factor"] = alpha ** max(abs(e) for e in exps)
        setattr(model, _APPLIED, True)
        return stats
