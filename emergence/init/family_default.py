"""The model family's conventional base init (docs/method.md): Xavier uniform (gain 1) for the Transformer, Kaiming
normal (fan_in, relu) for MLPs and CNNs.

A model names its convention in a ``base_init`` attribute ("xavier" or "kaiming"; absent = "kaiming"). This is the
default ``base`` of the emergence and GradInit configs, so ``init@init.base=kaiming`` (or ``=xavier``) replaces it the
same way on every family. The draws are exactly those of ``Kaiming()`` / ``Xavier()`` with their defaults. The stats
say which one ran (``base_is_xavier``). Contract: see ``torch_default``.
"""

from __future__ import annotations

from torch import nn

from emergence.init.kaiming import Kaiming
from emergence.init.xavier import Xavier

CONVENTIONS = {"kaiming": Kaiming, "xavier": Xavier}


class FamilyDefault:
    """Kaiming or Xavier with their defaults, as the model's ``base_init`` says."""

    needs_data = False

    def __call__(self, model: nn.Module, example: tuple = (), generator=None) -> dict[str, float]:
        name = getattr(model, "base_init", "kaiming")
        if name not in CONVENTIONS:
            raise ValueError(f"{type(model).__name__}.base_init must be one of {list(CONVENTIONS)}; got {name!r}")
        stats = CONVENTIONS[name]()(model, example, generator)
        return {**stats, "base_is_xavier": float(name == "xavier")}
