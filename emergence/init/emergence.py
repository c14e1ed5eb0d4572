"""Emergence-promoting initialization (Li, George, Silva, arXiv 2407.19044, eq. 10; PAPER.md §1-2).

A base initializer (Kaiming or Xavier, a nested config) is applied first; then depth unit l of the L units, in
forward-execution order (``layers.trace_units``), has its weights multiplied by alpha ** e_l:

- ``exponent="symmetric"`` (default): e_l = l - (L - 1) / 2. Odd L = 2n + 1 gives -n..n, exactly eq. 10 (first layer
  divided by alpha^n, middle unchanged, last multiplied by alpha^n); even L gives half-integers. sum(e) = 0.
- ``exponent="pivot"``: e_l = l - floor(L / 2) (the third-party C implementation's convention).
- ``turning_point=t``: e_l = l - t (the turning-point ablation; the product of scales is then no longer 1).
- ``inverse=True``: -e_l, the paper's "low emergence" control.

alpha = 1 leaves the base init bit for bit (every factor is exactly 1.0). Applying the rescale twice to one model is
almost always a bug, so it raises unless ``allow_reapply=True``. Contract: see ``torch_default``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emergence.init.layers import trace_units

CONVENTIONS = ("symmetric", "pivot")
_APPLIED = "_emergence_init_applied"


def exponents(n_units: int, convention: str = "symmetric", turning_point: float | None = None) -> list[float]:
    """The exponent e_l of each of ``n_units`` units (before ``inverse``)."""
    if n_units < 1:
        raise ValueError(f"need at least one weight layer; got {n_units}")
    if convention not in CONVENTIONS:
        raise ValueError(f"init.exponent must be one of {list(CONVENTIONS)}; got {convention!r}")
    if turning_point is not None:
        pivot = float(turning_point)
    elif convention == "symmetric":
        pivot = (n_units - 1) / 2
    else:
        pivot = float(n_units // 2)
    return [l - pivot for l in range(n_units)]


class Emergence:
    """Base init, then the alpha ** e ramp over the depth units."""

    needs_data = False

    def __init__(
        self,
        base,
        alpha: float = 1.2,
        exponent: str = "symmetric",
        inverse: bool = False,
        turning_point: float | None = None,
        allow_reapply: bool = False,
    ):
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
            raise ValueError(
                f"init.alpha must be a finite number > 0 (1 = the base init, > 1 promotes emergence); got {alpha}"
            )
        if exponent not in CONVENTIONS:
            raise ValueError(f"init.exponent must be one of {list(CONVENTIONS)}; got {exponent!r}")
        if not callable(base):
            raise ValueError(
                "init.base must be an initializer config with a _target_ (e.g. emergence.init.kaiming.Kaiming)"
            )
        self.base, self.alpha, self.exponent = base, float(alpha), exponent
        self.inverse, self.turning_point, self.allow_reapply = bool(inverse), turning_point, bool(allow_reapply)

    @torch.no_grad()
    def __call__(self, model: nn.Module, example: tuple, generator=None) -> dict[str, float]:
        if getattr(model, _APPLIED, False) and not self.allow_reapply:
            raise RuntimeError(
                "the emergence rescale was already applied to this model; applying it twice compounds the ramp. "
                "Build a fresh model, or pass allow_reapply=True if this is intended."
            )
        stats = dict(self.base(model, example, generator))
        units = trace_units(model, example)
        exps = exponents(len(units), self.exponent, self.turning_point)
        if self.inverse:
            exps = [-e for e in exps]
        for unit, e in zip(units, exps):
            factor = self.alpha**e
            for name, weight in unit.weights:
                weight.mul_(factor)
                stats[f"{name}/std"] = float(weight.float().std())
            stats[f"{unit.name}/scale"] = factor
            stats[f"{unit.name}/exponent"] = e
        stats["alpha"] = self.alpha
        stats["n_units"] = len(units)
        stats["alpha_max_factor"] = self.alpha ** max(abs(e) for e in exps)
        setattr(model, _APPLIED, True)
        return stats
