"""RescaleAdam: GradInit's scalar Adam on the per-tensor scales (docs/gradinit.md; zhuchen03/gradinit
``gradinit_optimizers.py``), vectorized over the tensors, in float64 on the CPU.

- Two first moments, one per step kind (``objective`` / ``constraint``), each bias-corrected with **that kind's own
  step count**, never the total (so the first objective step after any number of constraint steps moves a scale by
  the full lr, as in the official code).
- ``second_moment="shared"`` (the CIFAR code): one second moment fed by both kinds; only its bias correction uses the
  total count. ``"separate"`` (the fairseq copy): a second moment and count per kind.
- Each scalar gradient is clipped to ±``grad_clip``; the scale is clamped to [lower, upper].
- A tensor whose scale reaches exactly 0 (a bias, lower clamp 0) is frozen from then on: the official code skips a
  tensor whose current norm is 0, so it stays 0 for the rest of GradInit.
"""

from __future__ import annotations

import torch

KINDS = ("objective", "constraint")
SECOND_MOMENTS = ("shared", "separate")  # shared: the CIFAR code; separate: the fairseq code


class RescaleAdam:
    """Scalar Adam on the scales (see the module docstring)."""

    def __init__(
        self,
        n: int,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        grad_clip: float | None,
        lower: torch.Tensor,
        upper: torch.Tensor,
        second_moment: str = "shared",
    ):
        if second_moment not in SECOND_MOMENTS:
            raise ValueError(f"second_moment must be one of {list(SECOND_MOMENTS)}; got {second_moment!r}")
        f64 = torch.float64
        self.alpha = torch.ones(n, dtype=f64)
        self.m = {k: torch.zeros(n, dtype=f64) for k in KINDS}
        self.v = {k: torch.zeros(n, dtype=f64) for k in KINDS}
        self.steps = {k: 0 for k in KINDS}
        self.frozen = torch.zeros(n, dtype=torch.bool)  # scales that reached 0: skipped from then on
        self.lr, self.betas, self.eps, self.grad_clip = lr, betas, eps, grad_clip
        self.lower, self.upper, self.shared = lower.double(), upper.double(), second_moment == "shared"

    def step(self, grad: torch.Tensor, kind: str) -> torch.Tensor:
        """One update from ∂objective/∂α of a ``kind`` step; returns the new scales."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}; got {kind!r}")
        g = grad.detach().to("cpu", torch.float64)
        if self.grad_clip is not None:
            g = g.clamp(-self.grad_clip, self.grad_clip)
        live = ~self.frozen
        b1, b2 = self.betas
        self.steps[kind] += 1
        t1 = self.steps[kind]  # first moment: this kind's own count
        t2 = sum(self.steps.values()) if self.shared else t1  # second moment: the total only when it is shared
        m = self.m[kind]
        v = self.v["objective" if self.shared else kind]
        m[live] = m[live] * b1 + g[live] * (1 - b1)
        v[live] = v[live] * b2 + g[live].square() * (1 - b2)
        update = (m / (1 - b1**t1)) / ((v / (1 - b2**t2)).sqrt() + self.eps)
        new = torch.clamp(self.alpha - self.lr * update, self.lower, self.upper)
        self.alpha = torch.where(live, new, self.alpha)
        self.frozen |= self.alpha == 0
        return self.alpha
