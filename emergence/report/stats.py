"""Paired statistics over seeds: one comparison = the per-seed differences treatment − control.

A seed gives every init the same base weights draw and data order (emergence/seeding.py), so runs of two cells with
the same seed form a pair and every comparison is made on the per-seed differences. For those differences this module
gives, with scipy.stats doing the work:

- the mean difference, its sd, and two 95 % intervals: a paired bootstrap (BCa, ``resamples`` seeded resamples;
  the percentile interval when BCa is undefined) and the t-interval of ``ttest_rel``;
- two-sided p-values of the paired t-test (``ttest_rel``) and the Wilcoxon signed-rank test (``wilcoxon``);
- Cohen's d_z = mean / sd of the differences, the probability of improvement (fraction of pairs the treatment wins
  in the claimed direction, ties counted as half), and the number of seeds that would bring the t-interval's
  half-width under δ at the observed sd;
- ``holm``: Holm's step-down adjustment across the comparisons of one report (scipy has no Holm).

Degenerate differences (all equal, sd = 0) get the point interval [mean, mean] and p = 0 when the mean is not 0,
p = 1 when it is.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def seeds_for_halfwidth(sd: float, delta: float, confidence: float = 0.95, n_max: int = 100_000) -> int | None:
    """Smallest n >= 2 with t_{(1+c)/2, n-1} * sd / sqrt(n) < delta (None when delta <= 0 or n > n_max)."""
    if not (delta > 0) or not math.isfinite(sd):
        return None
    if sd == 0:
        return 2
    q = (1 + confidence) / 2
    # start from the normal approximation and walk to the exact t answer (it is never below it)
    n = max(2, int((stats.norm.ppf(q) * sd / delta) ** 2))
    while n > 2 and stats.t.ppf(q, n - 2) * sd / math.sqrt(n - 1) < delta:
        n -= 1
    while stats.t.ppf(q, n - 1) * sd / math.sqrt(n) >= delta:
        n += 1
        if n > n_max:
            return None
    return n


def paired(
    treatment,
    control,
    *,
    direction: str = "greater",
    delta: float = 0.0,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict:
    """Statistics of the paired differences ``treatment - control`` (equal-length sequences, one entry per seed).

    ``direction`` is the claimed sign: "greater" (the treatment should be higher) or "less".
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    t, c = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if t.shape != c.shape or t.ndim != 1:
        raise ValueError(f"paired samples need equal 1-d shapes, got {t.shape} and {c.shape}")
    if not (np.isfinite(t).all() and np.isfinite(c).all()):
        raise ValueError("paired samples must be finite (substitute diverged runs before calling paired())")
    d = t - c
    n = len(d)
    sign = 1.0 if direction == "greater" else -1.0
    out = {"n": n, "direction": direction, "delta": delta, "confidence": confidence, "resamples": resamples}
    out.update(mean_treatment=_mean(t), mean_control=_mean(c), sd_treatment=_sd(t), sd_control=_sd(c))
    out.update(mean_diff=_mean(d), sd_diff=_sd(d))
    none = dict.fromkeys(("ci_boot", "ci_t", "p_t", "p_wilcoxon", "d_z", "seeds_needed"))
    if n == 0:
        return {**out, **none, "p_improve": None}
    wins = np.sign(sign * d)
    out["p_improve"] = float(np.mean((wins > 0) + 0.5 * (wins == 0)))
    if n < 2:
        return {**out, **none}
    mean, sd = out["mean_diff"], out["sd_diff"]
    out["seeds_needed"] = seeds_for_halfwidth(sd, delta, confidence)
    if sd == 0:  # all differences equal: the interval is the point, the tests are degenerate
        return {
            **out,
            "ci_boot": (mean, mean),
            "ci_t": (mean, mean),
            "p_t": 0.0 if mean != 0 else 1.0,
            "p_wilcoxon": 0.0 if mean != 0 else 1.0,
            "d_z": math.copysign(math.inf, mean) if mean != 0 else 0.0,
        }
    res = stats.ttest_rel(t, c)
    ci = res.confidence_interval(confidence)
    out["ci_t"] = (float(ci.low), float(ci.high))
    out["p_t"] = float(res.pvalue)
    out["ci_boot"] = _bootstrap(d, confidence, resamples, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero differences and ties: scipy warns and handles them
        w = stats.wilcoxon(d) if np.any(d != 0) else None
    out["p_wilcoxon"] = float(w.pvalue) if w is not None else 1.0
    out["d_z"] = mean / sd
    return out


def _bootstrap(d: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa is undefined for some small samples: fall back to percentile
        for method in ("BCa", "percentile"):
            res = stats.bootstrap(
                (d,), np.mean, n_resamples=resamples, confidence_level=confidence, method=method,
                rng=np.random.default_rng(seed),
            )  # fmt: skip
            lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
            if math.isfinite(lo) and math.isfinite(hi):
                return lo, hi
    return _mean(d), _mean(d)


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None entries are left out of the family and stay None)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    m, running = len(order), 0.0
    out: list[float | None] = [None] * len(pvalues)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _sd(x: np.ndarray) -> float | None:
    return float(np.std(x, ddof=1)) if len(x) > 1 else (0.0 if len(x) else None)
