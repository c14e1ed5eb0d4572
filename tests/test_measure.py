"""Tests of the emergence measure E (emergence/metrics/emergence.py; docs/method.md#the-emergence-measure)."""

import math

import pytest
import torch
from torch import nn

from emergence.metrics.emergence import (
    activation_layers,
    emergence_value,
    fixed_probe,
    log10_emergence,
    measure,
)

torch.set_num_threads(1)


class _HandSet(nn.Module):
    """Three hidden layers whose post-ReLU outputs are fixed by hand (zero weights, hand-set biases)."""

    def __init__(self) -> None:
        super().__init__()
        # Layer sizes n = [4, 3, 5]; values > 0.05 after ReLU are active: a = [1, 2, 3].
        biases = [[1.0, 0.0, 0.04, -2.0], [0.3, 0.06, 0.04], [0.5, 2.0, -1.0, 0.0, 0.1]]
        self.lins = nn.ModuleList()
        self.acts = nn.ModuleList()
        fan_in = 2
        for b in biases:
            lin = nn.Linear(fan_in, len(b))
            with torch.no_grad():
                lin.weight.zero_()
                lin.bias.copy_(torch.tensor(b))
            self.lins.append(lin)
            self.acts.append(nn.ReLU())
            fan_in = len(b)
        self.head = nn.Linear(fan_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lin, act in zip(self.lins, self.acts):
            x = act(lin(x))
        return self.head(x)


def _ramped_mlp(alpha: float, inverse: bool = False, seed: int = 0) -> nn.Sequential:
    """Bias-free ReLU MLP 784-256x6-10, Kaiming normal fan_in, 0-based layer l scaled by alpha**(+-(l-3))."""
    gen = torch.Generator().manual_seed(seed)
    dims = [784] + [256] * 6 + [10]
    mods: list[nn.Module] = []
    for l in range(7):
        lin = nn.Linear(dims[l], dims[l + 1], bias=False)
        std = math.sqrt(2.0 / dims[l])  # kaiming_normal_(mode="fan_in", nonlinearity="relu"), with our generator
        with torch.no_grad():
            lin.weight.normal_(0.0, std, generator=gen).mul_(alpha ** ((-1 if inverse else 1) * (l - 3)))
        mods.append(lin)
        if l < 6:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


@pytest.fixture(scope="module")
def image_probe() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1234)
    x = torch.rand(256, 784, generator=gen)
    return (x - x.mean()) / x.std()  # standardized like normalized images


def test_emergence_value_hand_computed_three_layers():
    # n = [4, 3, 5], a = [1, 2, 3]:
    # (n1-a1)*a2 + (n1-a1)*n2*a3 + (n2-a2)*a3 = 3*2 + 3*3*3 + 1*3 = 6 + 27 + 3 = 36
    e = emergence_value([4, 3, 5], [1, 2, 3])
    assert e == 36 and isinstance(e, int)


def test_emergence_value_product_over_active_hand_computed():
    # (n1-a1)*a2 + (n1-a1)*a2*a3 + (n2-a2)*a3 = 3*2 + 3*2*3 + 1*3 = 6 + 18 + 3 = 27
    assert emergence_value([4, 3, 5], [1, 2, 3], product_over="active") == 27


def test_measure_hand_set_activations_match_hand_computed():
    model = _HandSet()
    r = measure(model, (torch.randn(7, 2),))
    assert r["n"] == [4, 3, 5] and r["a"] == [1, 2, 3]
    assert r["E"] == 36
    assert r["log10_E"] == pytest.approx(math.log10(36))
    n_params = sum(p.numel() for p in model.parameters())
    assert r["n_params"] == n_params and r["E_rel"] == pytest.approx(36 / n_params)
    assert r["active/acts.1"] == 2 and r["active_frac/acts.2"] == pytest.approx(3 / 5)
    assert measure(model, (torch.randn(7, 2),), product_over="active")["E"] == 27


def test_measure_fraction_active_is_mean_per_sample_count():
    # Identity weights, so hidden layers are relu(x): rows give per-sample active counts 2 and 1 in both layers.
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU(), nn.Linear(3, 3, bias=False), nn.ReLU())
    with torch.no_grad():
        for lin in (model[0], model[2]):
            lin.weight.copy_(torch.eye(3))
    x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0]])
    # binary: activities [1, 0.5, 0] -> a = [2, 2]; E = (3-2)*2 = 2
    assert measure(model, (x,))["E"] == 2
    # fraction_active: a = [(2+1)/2, 1.5] = [1.5, 1.5]; E = (3-1.5)*1.5 = 2.25
    r = measure(model, (x,), count="fraction_active")
    assert r["a"] == [1.5, 1.5] and r["E"] == pytest.approx(2.25)
    assert r["log10_E"] == pytest.approx(math.log10(2.25))


def test_emergence_zero_gives_log10_minus_inf():
    assert emergence_value([3, 3], [3, 0]) == 0
    assert log10_emergence([3, 3], [3, 0]) == -math.inf


@pytest.mark.parametrize("product_over", ["all", "active"])
def test_emergence_float64_and_log_space_agree(product_over):
    gen = torch.Generator().manual_seed(0)
    for depth in (2, 5, 20):
        n = torch.randint(5, 300, (depth,), generator=gen).tolist()
        frac = torch.rand(depth, generator=gen).tolist()
        a_float = [f * n_i for f, n_i in zip(frac, n)]
        a_int = [round(v) for v in a_float]
        for a in (a_float, a_int):
            e = emergence_value(n, a, product_over)
            assert math.log10(e) == pytest.approx(log10_emergence(n, a, product_over), rel=1e-12)


def test_emergence_log_space_finite_where_float64_overflows():
    n, a_float = [1000] * 120, [500.5] * 120  # E ~ 1e357 > float64 max
    assert emergence_value(n, a_float) == math.inf
    exact = emergence_value(n, [500] * 120)  # the exact int path does not overflow
    assert isinstance(exact, int)
    assert log10_emergence(n, [500] * 120) == pytest.approx(math.log10(exact), rel=1e-12)
    assert 350 < log10_emergence(n, a_float) < 360


def test_measure_invariant_to_probe_sample_order(image_probe):
    model = _ramped_mlp(1.5)
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(5))
    assert measure(model, (image_probe,))["E"] == measure(model, (image_probe[perm],))["E"]
    fa = measure(model, (image_probe,), count="fraction_active")["E"]
    assert measure(model, (image_probe[perm],), count="fraction_active")["E"] == pytest.approx(fa, rel=1e-12)


def test_emergence_rises_with_alpha_on_ramped_mlp(image_probe):
    # Measured (seed 0 weights, seed 1234 probe): E = 1.60e10, 6.09e10, 2.88e11, 4.76e11 for alpha = 1, 1.2, 1.5, 2
    # (active per layer [256, 251, 227, 215, 191, 186] at alpha = 1, [256, 6, 0, 1, 20, 113] at alpha = 2).
    es = [measure(_ramped_mlp(alpha), (image_probe,))["E"] for alpha in (1.0, 1.2, 1.5, 2.0)]
    assert all(lo < hi for lo, hi in zip(es, es[1:])), es


def test_emergence_inverse_ramp_lower_than_forward_ramp(image_probe):
    forward = measure(_ramped_mlp(2.0), (image_probe,))["E"]
    inverse = measure(_ramped_mlp(2.0, inverse=True), (image_probe,))["E"]  # measured 2.33e5 vs 4.76e11
    assert inverse < forward


class _BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)
        self.bn1 = nn.BatchNorm1d(4)
        self.act1 = nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.drop(self.act(self.bn(self.conv(x))))).flatten(1)
        return self.head(self.act1(self.bn1(self.fc(x))))


def test_measure_leaves_bn_buffers_and_training_flags_unchanged():
    torch.manual_seed(0)
    model = _BNNet()
    with torch.no_grad():  # non-default running stats, so "batch" and "running" differ
        model.bn.running_mean.fill_(3.0)
        model.bn.running_var.fill_(0.2)
    model.train()
    model.bn1.eval()  # a mixed state must be restored module by module
    flags = {name: m.training for name, m in model.named_modules()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    x = torch.randn(16, 3, 5, 5)
    r_batch = measure(model, (x,), bn_mode="batch")
    r_running = measure(model, (x,), bn_mode="running")
    assert {name: m.training for name, m in model.named_modules()} == flags
    for name, b in model.named_buffers():
        assert torch.equal(b, buffers[name]), name
    # Shifted running stats must change which units are active, so the two modes were really different.
    assert r_batch["n"] == [8, 4]
    assert r_batch["a"] != r_running["a"]
    assert measure(model, (x,), count="fraction_active") == measure(model, (x,), count="fraction_active")  # no dropout


def test_measure_bn_batch_mode_matches_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        model[1].running_mean.fill_(10.0)  # with running stats every unit would be inactive
    x = torch.randn(32, 5)
    with torch.no_grad():
        h = torch.relu((lambda z: (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5))(model[0](x)))
    expected = int((h.mean(0) > 0.05).sum())
    assert measure(model, (x,))["a"] == [expected] and expected > 0
    assert measure(model, (x,), bn_mode="running")["a"] == [0]


class _ReorderedNet(nn.Module):
    """Registers act_late before act_early, but calls act_early first; the logits pass through no activation."""

    def __init__(self) -> None:
        super().__init__()
        self.act_late = nn.Tanh()
        self.fc2 = nn.Linear(6, 3)
        self.act_early = nn.ReLU()
        self.fc1 = nn.Linear(4, 6)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act_early(self.fc1(x))
        h = self.act_early(h)  # a second call of the same module counts once
        return self.head(self.act_late(self.fc2(h)))


def test_activation_layers_follow_forward_order_not_registration():
    model = _ReorderedNet()
    assert [name for name, _ in model.named_modules() if name.startswith("act")] == ["act_late", "act_early"]
    layers = activation_layers(model, (torch.randn(3, 4),))
    assert [name for name, _ in layers] == ["act_early", "act_late"]
    assert layers[0][1] is model.act_early
    assert measure(model, (torch.randn(3, 4),))["n"] == [6, 3]


def test_measure_conv_node_is_channel_with_spatial_mean():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    model = nn.Sequential(conv, nn.ReLU())
    # Channel 0 = relu(x), channel 1 = relu(-x); x is +1 on 1 of 4 pixels and -0.1 elsewhere, for both samples:
    # channel means 0.25 (active) and 0.075 (active); per-sample channel means are the same, so fraction = 2.
    x = torch.full((2, 1, 2, 2), -0.1)
    x[:, 0, 0, 0] = 1.0
    r = measure(model, (x,))
    assert r["n"] == [2] and r["a"] == [2]
    assert measure(model, (x,), threshold=0.1)["a"] == [1]


class _FFN(nn.Module):
    """N x T x D activations with an in-place residual add right after the activation."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 6, bias=False), nn.GELU(), nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(x))
        h += 100.0  # would make every feature active if the hook kept a reference instead of a reduced copy
        return self.fc2(h)


@pytest.mark.parametrize("shape", [(2, 5, 4), (2, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_measure_ffn_node_is_feature_and_survives_inplace_ops(dtype, shape):
    model = _FFN().to(dtype)
    with torch.no_grad():
        model.fc1.weight.zero_()
        model.fc1.weight[:3, 0] = 1.0  # features 0-2 = gelu(x_0) (x_0 = 1 -> 0.84, active), features 3-5 = 0
    x = torch.zeros(*shape, dtype=dtype)
    x[..., 0] = 1.0
    r = measure(model, (x,))
    assert r["n"] == [6] and r["a"] == [3]


def test_fixed_probe_is_seeded_subset():
    x = torch.arange(100).float().unsqueeze(1)
    p1, p2 = fixed_probe(x, 10, seed=3), fixed_probe(x, 10, seed=3)
    assert torch.equal(p1, p2) and p1.shape == (10, 1)
    assert len(set(p1.squeeze(1).tolist())) == 10
    assert not torch.equal(p1, fixed_probe(x, 10, seed=4))
    with pytest.raises(ValueError):
        fixed_probe(x, 101, seed=0)
