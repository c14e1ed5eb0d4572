"""Orthogonal init (emergence/init/orthogonal.py) against its analytic properties: singular values = gain, entry
variance gain^2 / max(rows, cols), entries distributed as N(0, that variance) (KS test), conv kernels flattened."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from emergence.init.orthogonal import Orthogonal, matrix_shape
from emergence.train import run
from tests.conftest import compose_train


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ks_normal(samples: torch.Tensor, std: float) -> float:
    """Kolmogorov-Smirnov statistic of ``samples`` against N(0, std^2)."""
    x = samples.detach().double().flatten().sort().values
    n = len(x)
    cdf = 0.5 * (1 + torch.erf(x / (std * math.sqrt(2))))
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n
    return float(torch.maximum(upper - cdf, cdf - (upper - 1 / n)).max())


def ks_critical(n: int, alpha: float = 0.01) -> float:
    """Asymptotic KS critical value sqrt(-ln(alpha / 2) / 2) / sqrt(n)."""
    return math.sqrt(-math.log(alpha / 2) / 2) / math.sqrt(n)


def layers():
    """Wide and tall matrices, and convs whose flattened kernels are wide (96 x 576) and tall (200 x 72)."""
    return nn.Sequential(nn.Linear(600, 400), nn.Linear(300, 700), nn.Conv2d(64, 96, 3), nn.Conv2d(8, 200, 3))


@pytest.mark.parametrize("nonlinearity, gain", [("relu", math.sqrt(2)), ("tanh", 5 / 3), ("linear", 1.0)])
def test_singular_values_equal_the_gain_and_entry_variance_is_analytic(nonlinearity, gain):
    model = layers()
    stats = Orthogonal(nonlinearity=nonlinearity)(model, (), gen())
    assert stats["gain"] == pytest.approx(gain, rel=1e-12)
    for m in model:
        rows, cols = matrix_shape(m.weight)
        w = m.weight.detach().double().reshape(rows, cols)  # conv kernels flattened
        sv = torch.linalg.svdvals(w)
        assert len(sv) == min(rows, cols)
        assert torch.allclose(sv, torch.full_like(sv, gain), rtol=1e-5)
        # exact: the unit-norm rows (or columns) make the mean square gain^2 / max(rows, cols)
        assert float(w.square().mean()) == pytest.approx(gain**2 / max(rows, cols), rel=1e-5)
        assert torch.all(m.bias == 0)


def test_entries_follow_the_normal_limit_ks():
    layer = nn.Linear(1024, 768)
    Orthogonal(nonlinearity="relu")(layer, (), gen(1))
    std = math.sqrt(2) / math.sqrt(1024)
    d, crit = ks_normal(layer.weight, std), ks_critical(layer.weight.numel())
    assert d < crit, (d, crit)
    # the test has power: a 5 % wrong std is rejected at the same level
    assert ks_normal(layer.weight, 1.05 * std) > crit


def test_same_seed_same_weights_and_gain_override():
    a, b = nn.Linear(50, 40), nn.Linear(50, 40)
    Orthogonal(gain=0.5)(a, (), gen(7))
    Orthogonal(gain=0.5)(b, (), gen(7))
    assert torch.equal(a.weight, b.weight)
    assert torch.allclose(torch.linalg.svdvals(a.weight.double()), torch.full((40,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("kwargs, key", [({"nonlinearity": "swish"}, "init.nonlinearity"), ({"gain": 0}, "init.gain")])
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        Orthogonal(**kwargs)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet20_nobn"])
def test_config_composes_and_runs(arch, tmp_path):
    cfg = compose_train([f"arch={arch}", "init=orthogonal", "data=synthetic"], tmp_path)
    assert isinstance(instantiate(cfg.init), Orthogonal)
    if arch == "mlp":  # one short run through the runner
        cfg = compose_train(
            ["arch=mlp", "init=orthogonal", "data=synthetic", "debug=smoke", "arch.depth=2", "arch.width=32"], tmp_path
        )
        record = run(cfg)
        assert record["status"] == "completed" and record["config"]["init"]["nonlinearity"] == "relu"
