"""Emergence measure E of Li, George & Silva (arXiv 2407.19044, eq. 3/4; companion arXiv 2409.01568, Sec. 3.1.1).

For N hidden activation layers with n_i nodes of which a_i are active,

    E = sum_{i<j} (n_i - a_i) * a_j * prod_{i<k<j} m_k,

the number of paths from inactive nodes to active nodes of later layers. ``product_over="all"`` uses m_k = n_k (the
published form, default); ``product_over="active"`` uses m_k = a_k (the reading of the companion paper's eq. 9).
Relative emergence is E_rel = E / #parameters. Conventions follow docs/method.md#measurement-conventions:

- Layers are the outputs of the activation modules (``ACTIVATIONS``) in forward-execution order, recorded with forward
  hooks during one forward pass (a module called twice counts once, at its first call). Input and logits are not layers.
- A node's activity is its mean post-activation over a fixed probe batch; it is active if activity > ``threshold``.
  2-D outputs (N x D): node = feature. 4-D (N x C x H x W) and other >= 4-D conv outputs: node = channel, activity =
  mean over samples and spatial positions. 3-D outputs (N x T x D, Transformer FFN): node = feature (last dim),
  activity = mean over samples and positions (padding positions are not masked out).
- The model is measured in eval mode (dropout off) under ``torch.no_grad``. BatchNorm uses batch statistics without
  touching its running buffers (``bn_mode="batch"``, default) or its running statistics (``bn_mode="running"``). Every
  module's training flag is restored afterwards.
- ``count="binary"``: a_i = #active nodes, E is an exact Python int. ``count="fraction_active"``: a_i = expected number
  of active units per sample (mean over samples of #(unit > threshold), for conv a unit's per-sample value is the
  channel's spatial mean), E is a float64 (``inf`` on overflow) and ``log10_E`` comes from a log-space evaluation.
- ``log10_E`` is ``-inf`` when E = 0 (never None).

Usage::

    stats = measure(model, (x_probe,))          # {'E': ..., 'log10_E': ..., 'E_rel': ..., 'active/<layer>': ...}
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.Tanh,
    nn.Sigmoid,
)
BN_MODES = ("batch", "running")
COUNTS = ("binary", "fraction_active")
PRODUCT_OVER = ("all", "active")


def fixed_probe(x: Tensor, size: int, seed: int) -> Tensor:
    """Select a fixed, seeded subset of rows of ``x`` (in their original order).

    Args:
        x: Pool of samples, first dim is the sample dim.
        size: Number of rows to keep (at most ``len(x)``).
        seed: Seed of the private generator; the global RNG is not touched.
    """
    if not 0 < size <= x.shape[0]:
        raise ValueError(f"probe size {size} must be in 1..{x.shape[0]}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(x.shape[0], generator=gen)[:size].sort().values
    return x[idx.to(x.device)]


def _per_sample_units(out: Tensor) -> Tensor:
    """Reduce an activation output to (samples, nodes): spatial/positional mean per sample and node."""
    if out.dim() == 2:
        return out
    if out.dim() == 3:  # N x T x D: node = feature, mean over positions
        return out.mean(dim=1)
    if out.dim() >= 4:  # N x C x spatial...: node = channel, mean over spatial positions
        return out.flatten(2).mean(dim=2)
    raise ValueError(f"activation output must have a batch dim and a node dim, got shape {tuple(out.shape)}")


def _batch_stats_bn(module: nn.modules.batchnorm._BatchNorm, inputs: tuple, output: Tensor) -> Tensor:
    # Replace the eval-mode output by a batch-statistics normalization that is given no running buffers, so the
    # buffers are never written (not even momentarily).
    return F.batch_norm(inputs[0], None, None, module.weight, module.bias, True, 0.0, module.eps)


@contextmanager
def _measurement_mode(model: nn.Module, bn_mode: str):
    """Eval mode (dropout off), BN per ``bn_mode``; restores every module's training flag on exit."""
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    flags = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        model.eval()
        if bn_mode == "batch":
            handles = [
                m.register_forward_hook(_batch_stats_bn)
                for m in model.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)
            ]
        with torch.no_grad():
            yield
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags:
            m.training = flag  # set the flag only: .train() would recurse and override children


def _capture(model: nn.Module, inputs: tuple, bn_mode: str) -> list[tuple[str, nn.Module, Tensor]]:
    """One forward pass; returns (name, module, per-sample node values) for each activation layer in call order."""
    names = {m: name for name, m in model.named_modules()}
    records: dict[nn.Module, tuple[str, nn.Module, Tensor]] = {}  # dicts keep insertion (= first-call) order

    def hook(module: nn.Module, _inp: tuple, out: Tensor) -> None:
        if module in records or not isinstance(out, Tensor):
            return
        # Reduce (and copy) right away: a later in-place op (inplace ReLU, `out += identity`) may overwrite `out`.
        units = _per_sample_units(out.detach()).to(torch.float64, copy=True)
        records[module] = (names[module], module, units)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with _measurement_mode(model, bn_mode):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return list(records.values())


def activation_layers(model: nn.Module, example_inputs: tuple) -> list[tuple[str, nn.Module]]:
    """Hidden activation layers of ``model`` in forward-execution order (one no-grad eval forward pass)."""
    return [(name, m) for name, m, _ in _capture(model, _as_tuple(example_inputs), "batch")]


def _as_tuple(inputs: tuple | Tensor) -> tuple:
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _check(n: Sequence, a: Sequence, product_over: str) -> None:
    if product_over not in PRODUCT_OVER:
        raise ValueError(f"product_over must be one of {PRODUCT_OVER}, got {product_over!r}")
    if len(n) != len(a):
        raise ValueError(f"n and a differ in length: {len(n)} vs {len(a)}")
    for n_i, a_i in zip(n, a):
        if not 0 <= a_i <= n_i:
            raise ValueError(f"need 0 <= a_i <= n_i, got a_i={a_i}, n_i={n_i}")


def emergence_value(n: Sequence[int], a: Sequence[float | int], product_over: str = "all") -> int | float:
    """E = sum_{i<j} (n_i - a_i) a_j prod_{i<k<j} m_k, with m = n (``"all"``) or m = a (``"active"``).

    Exact Python int when every n_i and a_i is an integer, else float64 (``inf`` on overflow). Uses the running sum
    S_j = sum_{i<j} (n_i - a_i) prod_{i<k<j} m_k = S_{j-1} m_{j-1} + (n_{j-1} - a_{j-1}), so E = sum_j a_j S_j in O(N).
    """
    _check(n, a, product_over)
    exact = all(isinstance(v, numbers.Integral) for v in (*n, *a))
    conv = int if exact else float
    n_, a_ = [conv(v) for v in n], [conv(v) for v in a]
    m = n_ if product_over == "all" else a_
    total, s = conv(0), conv(0)
    for j in range(len(n_)):
        if j > 0:
            # Skip zero factors explicitly: in float, inf * 0 would give nan where the exact value is finite.
            s = (s * m[j - 1] if m[j - 1] else conv(0)) + (n_[j - 1] - a_[j - 1])
        if a_[j]:
            total += a_[j] * s
    return total


def _log_add(x: float, y: float) -> float:
    if x == -math.inf:
        return y
    if y == -math.inf:
        return x
    hi, lo = max(x, y), min(x, y)
    return hi + math.log1p(math.exp(lo - hi))


def _ln(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


def log10_emergence(n: Sequence[int], a: Sequence[float | int], product_over: str = "all") -> float:
    """log10 E evaluated in log space (log-sum-exp of the same recurrence), finite for any depth; -inf when E = 0."""
    _check(n, a, product_over)
    n_, a_ = [float(v) for v in n], [float(v) for v in a]
    m = n_ if product_over == "all" else a_
    log_total, log_s = -math.inf, -math.inf
    for j in range(len(n_)):
        if j > 0:
            log_s = _log_add(log_s + _ln(m[j - 1]), _ln(n_[j - 1] - a_[j - 1]))
        log_total = _log_add(log_total, _ln(a_[j]) + log_s)
    return log_total / math.log(10.0)


def _log10_of(e: int | float) -> float:
    return math.log10(e) if e > 0 else -math.inf  # math.log10 is exact-ish for Python ints of any size


def measure(
    model: nn.Module,
    probe_inputs: tuple,
    threshold: float = 0.05,
    bn_mode: str = "batch",
    count: str = "binary",
    product_over: str = "all",
    n_params: int | None = None,
) -> dict:
    """Emergence of ``model`` on a fixed probe batch (one forward pass, model state left unchanged).

    Args:
        model: Network whose activation modules (``ACTIVATIONS``) mark the hidden layers.
        probe_inputs: Positional args for ``model(*probe_inputs)``; a single tensor is accepted too.
        threshold: A node is active if its activity exceeds this (absolute) value.
        bn_mode: ``"batch"`` (batch statistics, running buffers untouched) or ``"running"`` (plain eval mode).
        count: ``"binary"`` (a_i = #active nodes) or ``"fraction_active"`` (expected #active units per sample).
        product_over: ``"all"`` (published form) or ``"active"`` (eq. 9 reading).
        n_params: Parameter count for E_rel; counted from ``model.parameters()`` when None.

    Returns:
        Flat dict: ``E``, ``log10_E`` (-inf when E = 0), ``E_rel``, ``log10_E_rel``, ``n_params``,
        ``active/<layer>`` (a_i), ``active_frac/<layer>`` (a_i / n_i), plus lists ``n`` and ``a``.
    """
    if count not in COUNTS:
        raise ValueError(f"count must be one of {COUNTS}, got {count!r}")
    records = _capture(model, _as_tuple(probe_inputs), bn_mode)
    if n_params is None:
        n_params = sum(p.numel() for p in model.parameters())
    out: dict = {}
    ns: list[int] = []
    as_: list[int | float] = []
    for name, _, units in records:
        n_i = units.shape[1]
        if count == "binary":
            a_i = int((units.mean(dim=0) > threshold).sum().item())
        else:
            a_i = float((units > threshold).sum(dim=1).double().mean().item())
        ns.append(n_i)
        as_.append(a_i)
        out[f"active/{name}"] = a_i
        out[f"active_frac/{name}"] = a_i / n_i
    e = emergence_value(ns, as_, product_over)
    if count == "binary":
        log10_e = _log10_of(e)
    else:
        log10_e = log10_emergence(ns, as_, product_over)
        # Cross-check the two float evaluations where float64 did not overflow.
        if 0 < e < math.inf and not math.isclose(math.log10(e), log10_e, rel_tol=1e-9, abs_tol=1e-9):
            warnings.warn(f"float64 and log-space emergence disagree: {math.log10(e)} vs {log10_e}", stacklevel=2)
    try:
        e_rel = e / n_params if n_params else math.nan
    except OverflowError:  # int / int beyond float range
        e_rel = math.inf
    out.update(
        E=e,
        log10_E=log10_e,
        E_rel=e_rel,
        log10_E_rel=log10_e - math.log10(n_params) if n_params else math.nan,
        n_params=n_params,
        n=ns,
        a=as_,
    )
    return out
