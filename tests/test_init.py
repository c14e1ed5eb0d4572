"""Initializers: baselines match their analytic std, torch_default is a no-op, the emergence ramp follows eq. 10."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from emergence.init.emergence import Emergence, exponents
from emergence.init.kaiming import Kaiming
from emergence.init.layers import trace_units
from emergence.init.torch_default import TorchDefault
from emergence.init.xavier import Xavier
from emergence.models.mlp import MLP
from emergence.optim import build_optimizer

SHAPE = (1, 28, 28)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def mlp(bias=True, depth=6, width=256, norm="none"):
    torch.manual_seed(0)
    return MLP(SHAPE, 10, depth=depth, width=width, bias=bias, norm=norm)


def example(n=4):
    return (torch.randn(n, *SHAPE, generator=gen(1)),)


def linears(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_std_matches_analytic(mode):
    model = nn.Sequential(nn.Linear(800, 600), nn.Conv2d(64, 96, 3))
    Kaiming(mode=mode)(model, (), gen())
    for m in model:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        expected = math.sqrt(2.0 / (fan_in if mode == "fan_in" else fan_out))
        assert abs(m.weight.std().item() / expected - 1) < 0.03  # >= 55k samples: sampling error ~0.3 %
        assert torch.all(m.bias == 0)


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_xavier_std_matches_analytic(distribution):
    model = nn.Sequential(nn.Linear(800, 600), nn.Conv2d(64, 96, 3))
    Xavier(distribution=distribution, gain=1.5)(model, (), gen())
    for m in model:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        expected = 1.5 * math.sqrt(2.0 / (fan_in + fan_out))
        assert abs(m.weight.std().item() / expected - 1) < 0.03


def test_norm_and_bias_reset_for_all_but_torch_default():
    model = mlp(norm="batch")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.fill_(3.0)
                m.bias.fill_(2.0)
    Kaiming()(model, example(), gen())
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        if isinstance(m, nn.Linear):
            assert torch.all(m.bias == 0)


def test_torch_default_is_a_no_op():
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    TorchDefault()(model, example(), gen())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("init", [Kaiming(), Xavier(), Emergence(Kaiming(), alpha=1.5)])
def test_same_seed_gives_bit_identical_weights(init):
    a, b = mlp(), mlp()
    type(init)(**_args(init))(a, example(), gen(7))
    type(init)(**_args(init))(b, example(), gen(7))
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def _args(init):
    if isinstance(init, Emergence):
        return {"base": Kaiming(), "alpha": init.ramp["alpha"]}
    return {}


@pytest.mark.parametrize(
    "n, convention, expected",
    [
        (7, "symmetric", [-3, -2, -1, 0, 1, 2, 3]),
        (6, "symmetric", [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]),
        (7, "pivot", [-3, -2, -1, 0, 1, 2, 3]),
        (6, "pivot", [-3, -2, -1, 0, 1, 2]),
        (1, "symmetric", [0]),
    ],
)
def test_emergence_exponents(n, convention, expected):
    e = exponents(n, convention)
    assert e == expected
    if convention == "symmetric":
        assert sum(e) == 0


def test_emergence_turning_point_moves_the_unscaled_layer():
    assert exponents(5, turning_point=1) == [-1, 0, 1, 2, 3]


def test_emergence_alpha_one_is_identity():
    a, b = mlp(), mlp()
    Kaiming()(a, example(), gen(3))
    Emergence(Kaiming(), alpha=1.0)(b, example(), gen(3))
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_emergence_layer_std_follows_alpha_power_e():
    alpha = 1.5
    base, ramped = mlp(), mlp()
    Kaiming()(base, example(), gen(3))
    stats = Emergence(Kaiming(), alpha=alpha)(ramped, example(), gen(3))
    for l, (b, r) in enumerate(zip(linears(base), linears(ramped))):
        factor = alpha ** (l - 3)
        assert torch.allclose(r.weight, b.weight * factor)
        assert r.weight.std().item() == pytest.approx(b.weight.std().item() * factor, rel=1e-5)
    assert stats["alpha_max_factor"] == pytest.approx(alpha**3)
    assert stats["net.1/exponent"] == -3 and stats["net.13/exponent"] == 3


@pytest.mark.parametrize("alpha", [1.2, 1.5, 2.0])
def test_emergence_keeps_the_function_of_a_bias_free_relu_mlp(alpha):
    base, ramped = mlp(bias=False), mlp(bias=False)
    Kaiming()(base, example(), gen(3))
    Emergence(Kaiming(), alpha=alpha)(ramped, example(), gen(3))
    x = torch.randn(32, *SHAPE, generator=gen(5))
    with torch.no_grad():
        out_base, out_ramped = base(x), ramped(x)
    assert torch.allclose(out_base, out_ramped, rtol=1e-4, atol=1e-5)
    # ... while the individual layers really changed
    assert not torch.allclose(linears(base)[0].weight, linears(ramped)[0].weight)


def test_emergence_inverse_flips_the_ramp():
    fwd, inv = mlp(), mlp()
    s_fwd = Emergence(Kaiming(), alpha=2.0)(fwd, example(), gen(3))
    s_inv = Emergence(Kaiming(), alpha=2.0, inverse=True)(inv, example(), gen(3))
    for name in ("net.1", "net.7", "net.13"):
        assert s_inv[f"{name}/exponent"] == -s_fwd[f"{name}/exponent"]
        assert s_inv[f"{name}/scale"] == pytest.approx(1 / s_fwd[f"{name}/scale"])
    assert linears(inv)[0].weight.std() > linears(fwd)[0].weight.std()


def test_emergence_second_application_raises():
    model = mlp()
    init = Emergence(Kaiming(), alpha=1.2)
    init(model, example(), gen())
    with pytest.raises(RuntimeError, match="already applied"):
        init(model, example(), gen())
    Emergence(Kaiming(), alpha=1.2, allow_reapply=True)(model, example(), gen())


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan")])
def test_emergence_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="init.alpha"):
        Emergence(Kaiming(), alpha=alpha)


class Swapped(nn.Module):
    """Registration order (last, first) differs from execution order (first, last)."""

    def __init__(self):
        super().__init__()
        self.last = nn.Linear(8, 3)
        self.act = nn.ReLU()
        self.first = nn.Linear(4, 8)

    def forward(self, x):
        return self.last(self.act(self.first(x)))


def test_trace_follows_forward_order_not_registration_order():
    model = Swapped()
    assert [n for n, _ in model.named_children()][0] == "last"
    units = trace_units(model, (torch.randn(2, 4),))
    assert [u.name for u in units] == ["first", "last"]
    stats = Emergence(Kaiming(), alpha=2.0)(model, (torch.randn(2, 4),), gen())
    assert stats["first/exponent"] == -0.5 and stats["last/exponent"] == 0.5


def test_trace_leaves_training_flags_and_bn_buffers_alone():
    model = mlp(norm="batch")
    model.train()
    buffers = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k})
    trace_units(model, example())
    assert all(m.training for m in model.modules())
    for k, v in buffers.items():
        assert torch.equal(model.state_dict()[k], v)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_layerwise_lr_control_tracks_the_rescaled_run(momentum):
    """docs/method.md: SGD on the rescaled bias-free ReLU net == SGD on the base net with lr * alpha^(-2 e_l)."""
    alpha, lr = 1.5, 0.05
    x = torch.randn(64, *SHAPE, generator=gen(11))
    y = torch.randint(10, (64,), generator=gen(12))
    ramped, control = mlp(bias=False, depth=3, width=64), mlp(bias=False, depth=3, width=64)
    Emergence(Kaiming(), alpha=alpha)(ramped, example(), gen(3))
    Kaiming()(control, example(), gen(3))
    opt_r = build_optimizer(ramped, name="sgd", lr=lr, momentum=momentum)
    opt_c = build_optimizer(
        control, name="sgd", lr=lr, momentum=momentum, layerwise_lr={"alpha": alpha}, example=example()
    )
    for _ in range(5):
        for model, opt in ((ramped, opt_r), (control, opt_c)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    with torch.no_grad():
        assert torch.allclose(ramped(x), control(x), rtol=1e-3, atol=1e-4)
    # the weights differ exactly by the init factor alpha^e_l (4 layers: e = -1.5..1.5)
    for l, (r, c) in enumerate(zip(linears(ramped), linears(control))):
        assert torch.allclose(r.weight, c.weight * alpha ** (l - 1.5), rtol=1e-3, atol=1e-5)
