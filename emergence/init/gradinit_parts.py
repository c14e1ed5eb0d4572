"""The pieces GradInit (``emergence/init/gradinit.py``) is built from, apart from its optimizer (``rescale_adam``):

- ``walk(model)``: the single walker that decides which tensors take part and which get a scale (docs/gradinit.md).
- ``gradinit_modes(model, device)``: dropout off, BatchNorm on batch statistics, fp32, math SDPA; flags restored.
- ``finish(...)``: write α·θ⁰ into the parameters, check directions, zero tensors and buffers, summarize the run.
- ``save_cache`` / ``load_cache``: the learned init in the run dir, reused on resume (a plain dict, weights_only).
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.modules.batchnorm import _BatchNorm

from emergence.init.layers import NORM_TYPES

log = logging.getLogger(__name__)
CACHE_FORMAT = "emergence-gradinit-v1"


@dataclass(frozen=True)
class Entry:
    """One trainable tensor: its name, clamp group (weight | bias | norm) and whether it gets a scale."""

    name: str
    group: str
    scaled: bool


def walk(model: nn.Module) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Every trainable tensor of ``model`` as an ``Entry``, and the skipped ones as (name, why).

    Every parameter counts, whatever its module type; tied tensors appear once (``named_parameters`` deduplicates).
    Zero tensors (zero biases, BN β) take part in g but get no scale; frozen tensors take no part.
    """
    entries, skipped = [], []
    for name, p in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        if not p.requires_grad:
            skipped.append((name, "frozen"))
            continue
        module = model.get_submodule(owner)
        if isinstance(module, NORM_TYPES) and leaf == "weight":
            group = "norm"
        else:
            group = "bias" if "bias" in leaf else "weight"
        scaled = bool(p.detach().abs().sum() > 0)
        if not scaled:
            skipped.append((name, "zero norm"))
        entries.append(Entry(name, group, scaled))
    return entries, skipped


@contextmanager
def gradinit_modes(model: nn.Module, device: torch.device):
    """Dropout off, BatchNorm on batch statistics, fp32, math SDPA; every training flag restored on exit."""
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()  # dropout and anything else keyed on .training
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.train()  # batch statistics; the running stats it updates are copies (GradInit._learn)
        with sdpa_kernel(SDPBackend.MATH), torch.autocast(device.type, enabled=False):
            yield
    finally:
        for m, flag in flags.items():
            m.training = flag


class Slots:
    """Calls a model with other tensors in place of its parameters and buffers, as ``torch.func.functional_call`` does
    (tied parameters share the new tensor), with a fraction of its per-call Python work: the module slots of each name
    are found once. The original tensors are back in their slots after every call."""

    def __init__(self, model: nn.Module):
        by_id: dict[int, list] = {}
        for m in model.modules():
            for store in (m._parameters, m._buffers):
                for k, v in store.items():
                    if v is not None:
                        by_id.setdefault(id(v), []).append((store, k, v))
        named = [*model.named_parameters(), *model.named_buffers()]
        self.model, self.slots = model, {n: by_id[id(v)] for n, v in named}

    def __call__(self, tensors: dict, inputs: tuple):
        try:
            for n, t in tensors.items():
                for store, k, _ in self.slots[n]:
                    store[k] = t
            return self.model(*inputs)
        finally:
            for slots in self.slots.values():
                for store, k, v in slots:
                    store[k] = v


@torch.no_grad()
def finish(model, entries, slot, theta0, alpha, before, skipped, history, eta, n_fwd, n_bwd) -> dict:
    """Write α·θ⁰ into the parameters, check directions, zero tensors and buffers; return the ``gradinit/`` stats."""
    params = dict(model.named_parameters())
    stats: dict = {}
    cos_min = 1.0
    for e, k, t in zip(entries, slot, theta0):
        p = params[e.name]
        if k is None:
            if p.any():
                raise RuntimeError(f"GradInit skipped {e.name} as zero, but it is not zero afterwards")
            continue
        p.copy_((t * float(alpha[k])).to(p.dtype))
        stats[f"gradinit/{e.name}/scale"] = float(alpha[k])
        if alpha[k] > 0:
            a, b = p.detach().double().flatten(), t.double().flatten()
            cos_min = min(cos_min, float(a @ b / (a.norm() * b.norm())))
    if cos_min < 1 - 1e-5:
        raise RuntimeError(f"GradInit changed a tensor's direction (min cosine {cos_min}); this is a bug")
    changed = [n for n, b in model.named_buffers() if not torch.equal(b, before[n])]
    if changed:
        raise RuntimeError(f"GradInit changed the buffers {changed}; they must stay bit-identical")
    kinds = [h["kind"] for h in history]
    l1 = [h["loss1_over_eta"] * eta for h in history if h["loss1_over_eta"] is not None]
    stats.update(
        {
            "gradinit/n_constraint": kinds.count("constraint"),
            "gradinit/n_objective": kinds.count("objective"),
            "gradinit/grad_norm_first": history[0]["grad_norm"],
            "gradinit/grad_norm_last": history[-1]["grad_norm"],
            "gradinit/loss0_last": history[-1]["loss0"],
            "gradinit/loss1_last": l1[-1] if l1 else math.nan,
            "gradinit/extra_forward": n_fwd,
            "gradinit/extra_backward": n_bwd,
            "gradinit/cos_min": cos_min,
            "gradinit/skipped": ",".join(n for n, _ in skipped),
        }
    )
    log.info(
        "GradInit: %d constraint + %d objective steps, |g| %.3g -> %.3g, scales in [%.3g, %.3g]",
        stats["gradinit/n_constraint"],
        stats["gradinit/n_objective"],
        stats["gradinit/grad_norm_first"],
        stats["gradinit/grad_norm_last"],
        float(alpha.min()),
        float(alpha.max()),
    )
    return stats


def save_cache(path: str | Path, result: dict, key: str | None) -> None:
    """Store the learned parameters, stats and history (a plain dict of tensors and numbers) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CACHE_FORMAT, "key": key, **result}, tmp)
    os.replace(tmp, path)


def load_cache(model: nn.Module, path: str | Path, key: str | None) -> dict | None:
    """The cached blob after copying its parameters into ``model``; None when there is no cache or another key."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: say so instead of a pickle traceback
        raise ValueError(
            f"{path} is not a readable GradInit cache ({type(exc).__name__}: {exc}); delete it to recompute GradInit"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != CACHE_FORMAT or not isinstance(blob.get("params"), dict):
        raise ValueError(f"{path} is not a GradInit cache (expected format {CACHE_FORMAT}); delete it to recompute")
    if key is not None and blob.get("key") != key:
        log.warning("GradInit cache %s was made for %r, not %r: recomputing", path, blob.get("key"), key)
        return None
    params = dict(model.named_parameters())
    cached = blob["params"]
    if set(cached) != set(params) or any(cached[n].shape != p.shape for n, p in params.items()):
        raise ValueError(f"{path} holds parameters of another model; delete it to recompute GradInit")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(cached[n])
    return blob
