"""CNN families under the suite's initializers and runner: forward-order ramps, alpha = 1, a few training steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emergence.init.emergence import Emergence
from emergence.init.kaiming import Kaiming
from emergence.init.layers import trace_units
from emergence.models.cnn import SmallCNN
from emergence.models.resnet import ResNet
from emergence.models.vgg import VGG
from emergence.train import run

SHAPE = (3, 32, 32)


def example():
    return (torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(0)),)


def resnet_forward_names(depth):
    """He et al.'s layout: stem conv, then conv1/conv2 of every block, stage by stage, then the classifier."""
    n = (depth - 2) // 6
    names = ["conv"]
    for stage in (1, 2, 3):
        for block in range(n):
            names += [f"stage{stage}.block{block}.conv1", f"stage{stage}.block{block}.conv2"]
    return names + ["fc"]


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_resnet_units_follow_forward_order(norm):
    torch.manual_seed(0)
    model = ResNet(SHAPE, 10, depth=20, norm=norm, width=0.25)
    units = trace_units(model, example())
    assert len(units) == 20  # option-A shortcuts carry no weights
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [u.name for u in units] == convs
    stats = Emergence(Kaiming(), alpha=1.1)(model, example(), torch.Generator().manual_seed(0))
    assert [stats[f"{u.name}/exponent"] for u in units] == [l - 9.5 for l in range(20)]


@pytest.mark.parametrize("depth", [20, 56])
def test_resnet_unit_names_match_he_et_al_layout(depth):
    torch.manual_seed(0)
    units = trace_units(ResNet(SHAPE, 10, depth=depth, width=0.25), example())
    assert [u.name for u in units] == resnet_forward_names(depth)


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("classifier, n_units", [("single", 17), ("three", 19)])
def test_vgg_units_follow_forward_order(norm, classifier, n_units):
    torch.manual_seed(0)
    model = VGG(SHAPE, 10, depth=19, norm=norm, classifier=classifier, width=0.125)
    units = trace_units(model, example())
    assert len(units) == n_units
    assert all(isinstance(dict(model.named_modules())[u.name], nn.Conv2d) for u in units[:16])
    assert all(isinstance(dict(model.named_modules())[u.name], nn.Linear) for u in units[16:])


@pytest.mark.parametrize(
    "make",
    [
        lambda: ResNet(SHAPE, 10, depth=20, width=0.25),
        lambda: VGG(SHAPE, 10, depth=11, width=0.125),
        lambda: SmallCNN(SHAPE, 10, norm="batch"),
    ],
)
def test_alpha_one_is_a_no_op_on_cnns(make):
    torch.manual_seed(0)
    a, b = make(), make()
    Kaiming()(a, example(), torch.Generator().manual_seed(4))
    Emergence(Kaiming(), alpha=1.0)(b, example(), torch.Generator().manual_seed(4))
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


@pytest.mark.parametrize("arch", ["cnn", "cnn_bn", "resnet20", "resnet20_nobn", "vgg11", "vgg11_nobn"])
def test_cnn_trains_a_few_steps(arch, make_cfg, tmp_path):
    width = [] if arch.startswith("cnn") else ["arch.width=0.25"]
    record = run(
        make_cfg(
            f"arch={arch}",
            "init=emergence",
            "data=synthetic",
            "logger=none",
            "trainer.epochs=2",
            "trainer.batch_size=64",
            "trainer.progress=false",
            "optim.lr=0.05",
            "trainer.grad_clip=1.0",
            *width,
            small=False,
        )
    )
    assert record["status"] == "completed"
    s = record["summary"]
    assert s["val_acc_final"] > s["val_acc_init"] + 0.2, s


def test_augmented_pipeline_trains_and_is_deterministic(make_cfg):
    overrides = [
        "arch=cnn_bn",
        "init=kaiming",
        "data=synthetic",
        "logger=none",
        "trainer.epochs=2",
        "trainer.progress=false",
        "optim.lr=0.05",
        "+data.augment={crop_padding: 1, flip: true, cutout: 2}",
    ]
    a = run(make_cfg(*overrides, small=False, run="a"))
    b = run(make_cfg(*overrides, small=False, run="b"))
    assert a["summary"]["val_acc_final"] > a["summary"]["val_acc_init"] + 0.2
    untimed = [k for k in a["summary"] if k.startswith("val_acc") or k.startswith("test_")]
    assert [a["summary"][k] for k in untimed] == [b["summary"][k] for k in untimed]  # same seed, same augmentation
