"""Paired statistics against hand computations and known shifts (emergence/report/stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from emergence.report.stats import holm, paired, seeds_for_halfwidth


def test_known_shift_gives_an_interval_around_it():
    rng = np.random.default_rng(1)
    control = rng.normal(80, 2, size=12)
    treatment = control + 3 + rng.normal(0, 0.5, size=12)
    s = paired(treatment, control, delta=0.5)
    d = treatment - control
    assert s["n"] == 12 and s["mean_diff"] == pytest.approx(d.mean())
    # the t-interval by hand: mean ± t_{0.975, n-1} sd / sqrt(n)
    half = st.t.ppf(0.975, 11) * d.std(ddof=1) / math.sqrt(12)
    assert s["ci_t"] == pytest.approx((d.mean() - half, d.mean() + half))
    for lo, hi in (s["ci_boot"], s["ci_t"]):
        assert lo < 3 < hi and lo > 2
    assert s["p_t"] < 1e-6 and s["p_wilcoxon"] < 0.001
    assert s["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert s["p_improve"] == 1.0


def test_bootstrap_is_seeded_and_close_to_t_for_normal_data():
    rng = np.random.default_rng(2)
    d = rng.normal(1.0, 1.0, size=40)
    a = paired(d, np.zeros(40), seed=7)
    b = paired(d, np.zeros(40), seed=7)
    assert a["ci_boot"] == b["ci_boot"]  # same seed, same interval
    assert paired(d, np.zeros(40), seed=8)["ci_boot"] != a["ci_boot"]
    assert a["ci_boot"][0] == pytest.approx(a["ci_t"][0], abs=0.1)
    assert a["ci_boot"][1] == pytest.approx(a["ci_t"][1], abs=0.1)


def test_probability_of_improvement_counts_ties_as_half_and_follows_direction():
    t, c = [1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 3.0]  # wins, tie, loss, win
    assert paired(t, c)["p_improve"] == pytest.approx(2.5 / 4)
    assert paired(t, c, direction="less")["p_improve"] == pytest.approx(1.5 / 4)


def test_seeds_needed_for_half_width_matches_t_table():
    # sd = 1, delta = 1: n = 6 gives 2.571/sqrt(6) = 1.05 >= 1, n = 7 gives 2.447/sqrt(7) = 0.925 < 1
    assert seeds_for_halfwidth(1.0, 1.0) == 7
    # sd = 2, delta = 0.5: about (1.96 * 4)^2 = 61.5 by the normal approximation; t pushes it to 64
    n = seeds_for_halfwidth(2.0, 0.5)
    assert st.t.ppf(0.975, n - 1) * 2 / math.sqrt(n) < 0.5 <= st.t.ppf(0.975, n - 2) * 2 / math.sqrt(n - 1)
    assert seeds_for_halfwidth(0.0, 0.5) == 2
    assert seeds_for_halfwidth(1.0, 0.0) is None


def test_holm_matches_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_degenerate_and_tiny_samples():
    s = paired([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert s["ci_boot"] == (1.0, 1.0) and s["ci_t"] == (1.0, 1.0) and s["p_t"] == 0.0 and s["d_z"] == math.inf
    z = paired([1.0, 1.0], [1.0, 1.0])
    assert z["ci_t"] == (0.0, 0.0) and z["p_t"] == 1.0
    one = paired([1.0], [0.0])
    assert one["n"] == 1 and one["ci_t"] is None and one["p_improve"] == 1.0
    empty = paired([], [])
    assert empty["n"] == 0 and empty["mean_diff"] is None
    with pytest.raises(ValueError, match="finite"):
        paired([float("nan")], [0.0])
    with pytest.raises(ValueError, match="direction"):
        paired([1.0], [0.0], direction="up")
