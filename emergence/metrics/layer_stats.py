"""Per-layer training diagnostics: gradient norm, relative update, distance from init, weight norm.

Answers the LPVS reviewer's "what happens per layer?" (docs/method.md#questions-the-suite-answers): the emergence
rescale acts like
layer-wise learning rates (docs/method.md#what-the-rescale-does), which shows up as different relative updates
||W_t - W_{t-1}|| / ||W_{t-1}|| and distances from init ||W_t - W_0|| / ||W_0|| per layer. Keys follow STYLE.md
Sec. 7: ``layer/<name>/<stat>``, with names exactly as the caller gives them.

Usage::

    tracker = LayerTracker([(name, m.weight) for name, m in weight_layers])
    ...  # after optimizer.step(), before zero_grad (grad norms need the grads)
    log(tracker.stats(step), step)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

NamedTensors = Iterable[tuple[str, Tensor]] | Mapping[str, Tensor]


def _items(named_params: NamedTensors) -> list[tuple[str, Tensor]]:
    items = list(named_params.items()) if isinstance(named_params, Mapping) else list(named_params)
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate parameter names: {names}")
    return items


def _f(t: Tensor) -> Tensor:
    # At least float32, so low-precision weights do not lose small differences; float64 stays float64.
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _to_floats(norms: list[Tensor]) -> list[float]:
    # One stack and one host transfer instead of a device sync per layer.
    return torch.stack(norms).tolist() if norms else []


def grad_norms(named_params: NamedTensors) -> dict[str, float]:
    """L2 norm of each tensor's ``.grad`` as ``layer/<name>/grad_norm``; tensors without a grad are left out."""
    with torch.no_grad():
        items = [(name, p.grad) for name, p in _items(named_params) if p.grad is not None]
        values = _to_floats([torch.linalg.vector_norm(_f(g)) for _, g in items])
    return {f"layer/{name}/grad_norm": v for (name, _), v in zip(items, values)}


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan  # undefined for an all-zero reference weight


class LayerTracker:
    """Tracks per-layer weight movement relative to the initial and the previously seen weights.

    Holds exactly two snapshots per tensor (W_0 and W_prev, on the tensor's device); nothing else is copied.

    Args:
        named_params: (name, tensor) pairs or a name -> tensor mapping, typically the weight of each layer.
    """

    def __init__(self, named_params: NamedTensors) -> None:
        self.params: list[tuple[str, Tensor]] = _items(named_params)
        with torch.no_grad():
            self.init = [p.detach().clone() for _, p in self.params]
            self.prev = [p.detach().clone() for _, p in self.params]
            self.init_norms = _to_floats([torch.linalg.vector_norm(_f(w)) for w in self.init])
        self.last_step: int | None = None

    def stats(self, step: int) -> dict[str, float]:
        """Stats at ``step``; ``rel_update`` spans the interval since the previous call (or since init).

        Returns:
            ``layer/<name>/grad_norm`` (if the grad exists), ``layer/<name>/rel_update``, ``layer/<name>/dist_init``,
            ``layer/<name>/weight_norm``, and ``layer/interval_steps`` (steps spanned by ``rel_update``; ``step`` on
            the first call).
        """
        out: dict[str, float] = grad_norms(self.params)
        with torch.no_grad():
            norms: list[Tensor] = []
            for (_, p), w0, wp in zip(self.params, self.init, self.prev):
                w, wp = _f(p.detach()), _f(wp)
                norms += [
                    torch.linalg.vector_norm(w),
                    torch.linalg.vector_norm(wp),
                    torch.dist(w, wp),
                    torch.dist(w, _f(w0)),
                ]
            values = _to_floats(norms)
            for i, (name, p) in enumerate(self.params):
                w_norm, prev_norm, d_prev, d_init = values[4 * i : 4 * i + 4]
                out[f"layer/{name}/weight_norm"] = w_norm
                out[f"layer/{name}/rel_update"] = _ratio(d_prev, prev_norm)
                out[f"layer/{name}/dist_init"] = _ratio(d_init, self.init_norms[i])
                self.prev[i].copy_(p.detach())
        out["layer/interval_steps"] = float(step - (self.last_step if self.last_step is not None else 0))
        self.last_step = step
        return out

    def state(self) -> dict:
        """Snapshots and counters, for a checkpoint."""
        return {"init": self.init, "prev": self.prev, "init_norms": self.init_norms, "last_step": self.last_step}

    def load_state(self, state: dict) -> None:
        """Restore what ``state()`` returned (exact resume of rel_update and dist_init)."""
        with torch.no_grad():
            for mine, saved in zip(self.init + self.prev, state["init"] + state["prev"]):
                mine.copy_(saved)
        self.init_norms, self.last_step = list(state["init_norms"]), state["last_step"]
