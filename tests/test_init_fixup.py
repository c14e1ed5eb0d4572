"""Fixup (emergence/init/fixup.py) on the CIFAR ResNets built with ``fixup=True``: zero branches make every block its
shortcut, so the features equal a hand-built shortcut path and the logits are exactly 0; the other branch layers have
He std times L^(-1/2) (m = 2), checked for two depths and with a KS test; other models get a clear error."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from emergence.init import InitNotApplicable
from emergence.init.fixup import Fixup, branches
from emergence.models.mlp import MLP
from emergence.models.resnet import ResNet
from emergence.train import run
from tests.conftest import compose_train
from tests.test_init_orthogonal import ks_critical, ks_normal


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def fixup_resnet(depth=20, width=1.0, shape=(3, 16, 16)):
    torch.manual_seed(0)
    return ResNet(shape, 10, depth=depth, norm="none", width=width, fixup=True)


def shortcut_path(model: ResNet, x: torch.Tensor) -> torch.Tensor:
    """The features a ResNet-(6n+2) computes when every branch is 0, built by hand: relu(stem conv), then at each
    stage change subsample by 2 and zero-pad the new channels half in front, half behind; then average-pool."""
    h = F.relu(F.conv2d(x, model.conv.weight, padding=1))
    for c_in, c_out in ((16, 32), (32, 64)):
        h = h[:, :, ::2, ::2]
        extra = c_out - c_in
        h = torch.cat(
            [
                h.new_zeros(h.size(0), extra // 2, *h.shape[2:]),
                h,
                h.new_zeros(h.size(0), extra - extra // 2, *h.shape[2:]),
            ],
            1,
        )
    return h.mean((2, 3))


def test_zero_branches_make_the_network_its_shortcut_path_and_logits_exactly_zero():
    model = fixup_resnet()
    x = torch.randn(4, 3, 16, 16, generator=gen(1))
    Fixup()(model, (x,), gen())
    for _, block, layers in branches(model):
        assert torch.all(layers[-1].weight == 0) and block.scale.item() == 1
    features = {}
    model.fc.register_forward_pre_hook(lambda m, args: features.update(fc_input=args[0].detach()))
    with torch.no_grad():
        logits = model(x)
        expected = shortcut_path(model, x)
    assert torch.equal(logits, torch.zeros_like(logits))  # classifier weight and bias are 0
    assert torch.allclose(features["fc_input"], expected, atol=1e-6)
    assert features["fc_input"].abs().sum() > 0  # the path carries signal
    scalars = {n: p.item() for n, p in model.named_parameters() if p.numel() == 1}
    assert all(v == (1.0 if n.endswith("scale") else 0.0) for n, v in scalars.items())


@pytest.mark.parametrize("depth", [20, 56])
def test_branch_layers_scale_as_L_to_minus_one_half(depth):
    model = fixup_resnet(depth)
    stats = Fixup()(model, (torch.zeros(1, 3, 16, 16),), gen())
    n_branches = 3 * (depth - 2) // 6
    assert stats["fixup/L"] == n_branches and stats["fixup/m"] == 2
    assert stats["fixup/branch_scale"] == pytest.approx(n_branches**-0.5, rel=1e-12)
    # pool all first-branch-layer weights of stage 3 (64 -> 64 channels): He fan_out std sqrt(2 / (64 * 9)) * L^-1/2
    w = torch.cat([b.conv1.weight.flatten() for b in model.stage3 if b.conv1.in_channels == 64])
    std = math.sqrt(2 / (64 * 9)) * n_branches**-0.5
    assert ks_normal(w, std) < ks_critical(w.numel())
    assert ks_normal(w, std * 1.05) > ks_critical(w.numel())  # power: a 5 % error is caught
    stem = model.conv.weight.detach()
    assert abs(float(stem.std()) / math.sqrt(2 / (16 * 9)) - 1) < 0.15  # stem: He, no branch factor (432 samples)


def test_exponent_from_two_depths_is_minus_one_half():
    def branch_std(depth):
        model = fixup_resnet(depth)
        Fixup()(model, (torch.zeros(1, 3, 16, 16),), gen(depth))
        w = torch.cat([b.conv1.weight.flatten() for b in model.stage3 if b.conv1.in_channels == 64])
        return float(w.detach().double().square().mean().sqrt())

    slope = math.log(branch_std(110) / branch_std(20)) / math.log(54 / 9)
    assert slope == pytest.approx(-0.5, abs=0.02)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP((1, 8, 8), 10, depth=2, width=8),
        lambda: ResNet((3, 8, 8), 10, depth=8, norm="none"),
        lambda: ResNet((3, 8, 8), 10, depth=8, norm="batch"),
    ],
)
def test_models_without_fixup_scalars_get_a_clear_error(make):
    with pytest.raises(InitNotApplicable, match="arch.fixup=true"):
        Fixup()(make(), (), gen())


def test_bad_mode_names_the_key():
    with pytest.raises(ValueError, match="init.mode"):
        Fixup(mode="avg")


def test_config_composes_and_runs_through_the_runner(tmp_path):
    over = ["arch=resnet20_nobn", "arch.fixup=true", "init=fixup", "data=synthetic", "arch.width=0.25"]
    cfg = compose_train(over, tmp_path)
    assert isinstance(instantiate(cfg.init), Fixup) and cfg.arch.fixup is True
    record = run(compose_train([*over, "debug=smoke", "trainer.max_steps=3", "trainer.batch_size=32"], tmp_path))
    assert record["status"] == "completed"
    assert record["config"]["arch"]["fixup"] is True


def test_cli_without_the_arch_option_exits_2_with_the_fix(subprocess_env):
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run(
        [sys.executable, "-m", "emergence.train", "arch=resnet20_nobn", "init=fixup", "data=synthetic", "debug=smoke"],
        capture_output=True, text=True, env=subprocess_env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "arch.fixup=true" in out.stderr + out.stdout
