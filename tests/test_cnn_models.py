"""Tests for the CNN families: VGG, CIFAR ResNet (option A) and SmallCNN.

Parameter counts are checked against closed forms written out here and against the literature values; big models are
built on the ``meta`` device so no weights are allocated.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emergence.models.cnn import SmallCNN
from emergence.models.resnet import BasicBlock, ResNet, ShortcutA
from emergence.models.vgg import CFGS, VGG

torch.set_num_threads(1)

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_meta(cls, *args, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return cls(*args, **kwargs)


def vgg_closed_form(depth: int, bn: bool, classifier: str, in_ch: int = 3, classes: int = 10) -> int:
    convs = [c for c in CFGS[depth] if c != "M"]
    total, prev = 0, in_ch
    for c in convs:
        total += 9 * prev * c + (2 * c if bn else c)  # 3x3 kernel; BN gamma+beta, or a conv bias
        prev = c
    if classifier == "single":
        return total + 512 * classes + classes
    return total + 2 * (512 * 512 + 512) + 512 * classes + classes


def resnet_closed_form(depth: int, bn: bool, in_ch: int = 3, classes: int = 10) -> int:
    n = (depth - 2) // 6
    per_norm = 2 if bn else 1  # per output channel: BN gamma+beta, or a conv bias
    total = 9 * in_ch * 16 + per_norm * 16
    prev = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += 9 * prev * c + 9 * c * c + 2 * per_norm * c
            prev = c
    return total + 64 * classes + classes


@pytest.mark.parametrize("bn", [True, False])
@pytest.mark.parametrize("classifier", ["single", "three"])
def test_vgg19_param_count_matches_closed_form(bn: bool, classifier: str) -> None:
    model = build_meta(VGG, (3, 32, 32), 10, depth=19, norm="batch" if bn else "none", classifier=classifier)
    assert n_params(model) == vgg_closed_form(19, bn, classifier)


@pytest.mark.parametrize("bn", [True, False])
def test_vgg19_single_classifier_param_count_is_20m(bn: bool) -> None:
    model = build_meta(VGG, (3, 32, 32), 10, depth=19, norm="batch" if bn else "none")
    assert abs(n_params(model) - 20.0e6) <= 0.1e6
    assert n_params(model) == (20_035_018 if bn else 20_029_514)


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_vgg_weight_layers_are_convs_plus_classifier(depth: int) -> None:
    for classifier, n_fc in (("single", 1), ("three", 3)):
        model = build_meta(VGG, (3, 32, 32), 10, depth=depth, classifier=classifier)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert len(convs) == depth - 3 and len(fcs) == n_fc
        assert model.classifier[0].in_features == 512


@pytest.mark.parametrize("depth", [20, 56, 110])
@pytest.mark.parametrize("bn", [True, False])
def test_resnet_param_count_matches_closed_form(depth: int, bn: bool) -> None:
    model = build_meta(ResNet, (3, 32, 32), 10, depth=depth, norm="batch" if bn else "none")
    assert n_params(model) == resnet_closed_form(depth, bn)


def test_resnet_param_counts_match_literature() -> None:
    assert abs(n_params(build_meta(ResNet, (3, 32, 32), 10, depth=20)) - 0.27e6) <= 0.005e6
    assert abs(n_params(build_meta(ResNet, (3, 32, 32), 10, depth=56)) - 0.85e6) <= 0.01e6
    assert abs(n_params(build_meta(ResNet, (3, 32, 32), 10, depth=110)) - 1.73e6) <= 0.02e6


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_resnet_weight_layer_count_equals_depth(depth: int) -> None:
    model = build_meta(ResNet, (3, 32, 32), 10, depth=depth)
    weight_layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weight_layers) == depth
    assert all(n_params(m) == 0 for m in model.modules() if isinstance(m, ShortcutA))


def tiny_models(shape: tuple[int, int, int]) -> list[nn.Module]:
    models = [
        SmallCNN(shape, 10, channels=(4, 8), hidden=16),
        SmallCNN(shape, 10, channels=(4, 8), hidden=16, norm="batch"),
        ResNet(shape, 10, depth=8, width=0.25),
        ResNet(shape, 10, depth=8, width=0.25, norm="none"),
    ]
    if shape[1] >= 28:
        models += [
            VGG(shape, 10, depth=19, width=1 / 16),
            VGG(shape, 10, depth=11, norm="none", classifier="three", width=1 / 16, dropout=0.1),
        ]
    return models


@pytest.mark.parametrize("shape", SHAPES)
def test_models_forward_shape_is_batch_by_classes(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, *shape)
    for model in tiny_models(shape):
        out = model(x)
        assert out.shape == (3, 10), type(model).__name__
        assert torch.isfinite(out).all()


def test_vgg_drops_pools_below_one_pixel() -> None:
    def pools(model: nn.Module) -> int:
        return sum(isinstance(m, nn.MaxPool2d) for m in model.modules())

    assert pools(build_meta(VGG, (3, 32, 32), 10)) == 5
    assert pools(build_meta(VGG, (1, 28, 28), 10)) == 4  # 28 -> 14 -> 7 -> 3 -> 1, fifth pool dropped
    assert pools(build_meta(VGG, (1, 8, 8), 10)) == 3
    assert pools(build_meta(SmallCNN, (1, 8, 8), 10, channels=(2, 2, 2, 2))) == 3


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8)])
def test_every_relu_is_a_distinct_module_seen_once_by_hooks(shape: tuple[int, int, int]) -> None:
    expected = {0: 3, 1: 3, 2: 7, 3: 7, 4: 16, 5: 10}  # SmallCNN 2+1; ResNet-8: 1 + 2*3; VGG-19: 16; VGG-11/three: 8+2
    for i, model in enumerate(tiny_models(shape)):
        relus = [m for m in model.modules(remove_duplicate=False) if isinstance(m, nn.ReLU)]
        assert len(relus) == expected[i] and len({id(m) for m in relus}) == len(relus)
        calls: list[nn.Module] = []
        hooks = [m.register_forward_hook(lambda mod, inp, out, calls=calls: calls.append(mod)) for m in relus]
        model(torch.randn(2, *shape))
        for h in hooks:
            h.remove()
        assert sorted(map(id, calls)) == sorted(map(id, relus))


def test_resnet_block_forward_order_is_registration_order() -> None:
    block = BasicBlock(4, 8, stride=2, use_bn=True)
    order: list[str] = []
    for name, child in block.named_children():
        child.register_forward_hook(lambda mod, inp, out, name=name: order.append(name))
    block(torch.randn(2, 4, 8, 8))
    assert order == [name for name, _ in block.named_children()]
    assert order == ["conv1", "bn1", "relu1", "conv2", "bn2", "shortcut", "relu2"]


def test_shortcut_a_subsamples_and_zero_pads_channels() -> None:
    x = torch.randn(2, 4, 7, 7)
    out = ShortcutA(4, 8, stride=2)(x)
    assert out.shape == (2, 8, 4, 4)
    assert torch.equal(out[:, 2:6], x[:, :, ::2, ::2])
    assert (out[:, :2] == 0).all() and (out[:, 6:] == 0).all()


def test_conv_bias_only_without_batchnorm() -> None:
    for norm in ("batch", "none"):
        for model in (
            build_meta(VGG, (3, 32, 32), 10, depth=11, norm=norm),
            build_meta(ResNet, (3, 32, 32), 10, depth=8, norm=norm),
            build_meta(SmallCNN, (1, 28, 28), 10, norm=norm),
        ):
            convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
            n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
            assert all((c.bias is None) == (norm == "batch") for c in convs)
            assert n_bn == (len(convs) if norm == "batch" else 0)


def test_models_keep_pytorch_default_init() -> None:
    torch.manual_seed(0)
    for model in tiny_models((3, 32, 32)):
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = 1 / m.weight[0].numel() ** 0.5  # kaiming_uniform(a=sqrt(5)) bound = 1/sqrt(fan_in)
                assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.5 * bound
            if isinstance(m, nn.BatchNorm2d):
                assert (m.weight == 1).all() and (m.bias == 0).all()


def test_width_scales_channels() -> None:
    model = build_meta(ResNet, (3, 32, 32), 10, depth=20, width=0.5)
    assert [model.conv.out_channels, model.fc.in_features] == [8, 32]
    vgg = build_meta(VGG, (3, 32, 32), 10, depth=11, classifier="three", width=0.25)
    assert vgg.features.conv0.out_channels == 16 and vgg.classifier.fc0.out_features == 128
    assert build_meta(SmallCNN, (1, 8, 8), 10, width=0.01).features.conv0.out_channels == 1


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (VGG, {"norm": "layer"}, "arch.norm"),
        (VGG, {"depth": 17}, "arch.depth"),
        (VGG, {"classifier": "two"}, "arch.classifier"),
        (VGG, {"dropout": 0.5}, "arch.dropout"),
        (VGG, {"width": 0.0}, "arch.width"),
        (ResNet, {"depth": 21}, "arch.depth"),
        (ResNet, {"norm": "group"}, "arch.norm"),
        (SmallCNN, {"channels": ()}, "arch.channels"),
        (SmallCNN, {"norm": "Batch"}, "arch.norm"),
    ],
)
def test_invalid_arch_kwargs_raise_naming_the_config_key(cls, kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        cls((3, 32, 32), 10, **kwargs)


def test_resnet_fixup_option_adds_the_scalars_and_drops_conv_biases():
    plain = ResNet((3, 32, 32), 10, depth=20, norm="none")
    fixup = ResNet((3, 32, 32), 10, depth=20, norm="none", fixup=True)
    conv_biases = sum(m.bias.numel() for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert conv_biases == 688 and n(fixup) == n(plain) - 688 + 5 * 9 + 2 == 268_393
    assert all(m.bias is None for m in fixup.modules() if isinstance(m, torch.nn.Conv2d))
    scalars = {k: p for k, p in fixup.named_parameters() if p.numel() == 1}
    assert sum(k.endswith("scale") for k in scalars) == 9
    assert all(p.item() == 1 for k, p in scalars.items() if "scale" in k)
    assert all(p.item() == 0 for k, p in scalars.items() if "scale" not in k)
    with pytest.raises(ValueError, match="arch.fixup=true needs arch.norm=none"):
        ResNet((3, 32, 32), 10, depth=20, norm="batch", fixup=True)
