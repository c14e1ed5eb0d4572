"""Emergence init, issue 11: alpha from the max_factor rule, the classifier-only instance of the companion paper, the
Transformer's unit options and base override, GradInit's CIFAR baseline init, and the no-BN ResNet lr rule."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from emergence.init.emergence import Emergence, rule_alpha
from emergence.init.family_default import FamilyDefault
from emergence.init.kaiming import Kaiming
from emergence.init.kaiming_fan_out_gradinit import KaimingFanOutGradInit
from emergence.init.torch_default import TorchDefault
from emergence.init.xavier import Xavier
from emergence.models.cnn import SmallCNN
from emergence.models.mlp import MLP
from emergence.models.resnet import ResNet
from emergence.models.transformer import Transformer
from emergence.models.vgg import VGG
from emergence.optim import build_optimizer
from scripts.aggregate import init_label
from tests.conftest import arch_model, compose_train

# The alpha values that conf/arch_init/<arch>_emergence.yaml carried before issue 11 (4 decimals, hand-copied there).
COPIED_ALPHA = {
    "mlp": 1.2599, "mlp_bn": 1.2599, "cnn": 1.5874, "cnn_bn": 1.5874,
    "resnet20": 1.0757, "resnet20_nobn": 1.0757, "resnet32": 1.0457, "resnet32_nobn": 1.0457,
    "resnet44": 1.0328, "resnet44_nobn": 1.0328, "resnet56": 1.0255, "resnet56_nobn": 1.0255,
    "resnet110": 1.0128, "resnet110_nobn": 1.0128,
    "vgg11": 1.1892, "vgg11_nobn": 1.1892, "vgg13": 1.1487, "vgg13_nobn": 1.1487,
    "vgg16": 1.1125, "vgg16_nobn": 1.1125, "vgg19": 1.0905, "vgg19_nobn": 1.0905,
    "transformer_iwslt_de_en": 1.0457, "transformer_tiny": 1.1343, "transformer_wmt_en_de": 1.0473,
}  # fmt: skip
IMG = (3, 32, 32)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def build(arch: str) -> tuple[nn.Module, tuple]:
    """Each existing architecture at a small width (the number of depth units does not depend on the width)."""
    norm = "none" if arch.endswith("_nobn") else "batch"
    name = arch.removesuffix("_nobn").removesuffix("_bn")
    torch.manual_seed(0)
    if arch.startswith("transformer"):
        preset = {"share_all_embeddings": True} if arch == "transformer_wmt_en_de" else {}
        model = arch_model(arch, 30, 30, d_model=16, ffn_dim=16, heads=2, **preset)
        return model, (torch.randint(3, 30, (2, 5)), torch.randint(3, 30, (2, 4)))
    if name == "mlp":
        model = MLP((1, 28, 28), 10, depth=6, width=16, norm="batch" if arch.endswith("_bn") else "none")
        return model, (torch.randn(4, 1, 28, 28),)
    if name == "cnn":
        model = SmallCNN((1, 28, 28), 10, channels=[4, 8], hidden=8, norm="batch" if arch.endswith("_bn") else "none")
        return model, (torch.randn(4, 1, 28, 28),)
    depth = int(name.removeprefix("vgg").removeprefix("resnet"))
    cls = VGG if name.startswith("vgg") else ResNet
    return cls(IMG, 10, depth=depth, norm=norm, width=0.125), (torch.randn(2, *IMG),)


@pytest.mark.parametrize("arch", sorted(COPIED_ALPHA))
def test_alpha_rule_reproduces_the_copied_values(arch):
    model, example = build(arch)
    stats = Emergence(TorchDefault())(model, example, gen())
    assert round(stats["alpha"], 4) == COPIED_ALPHA[arch]
    assert stats["alpha"] == pytest.approx(2 ** (2 / (stats["n_units"] - 1)))
    assert stats["alpha_max_factor"] == pytest.approx(2.0) and stats["alpha_from_rule"] == 1.0


def test_explicit_alpha_overrides_the_rule_and_max_factor_moves_it():
    model, example = build("mlp")
    stats = Emergence(TorchDefault(), alpha=1.5, max_factor=3.0)(model, example, gen())
    assert stats["alpha"] == 1.5 and stats["alpha_max_factor"] == pytest.approx(1.5**3) and stats["n_units"] == 7
    model, example = build("mlp")
    stats = Emergence(TorchDefault(), max_factor=3.0)(model, example, gen())
    assert stats["alpha"] == pytest.approx(3 ** (1 / 3)) and stats["alpha_max_factor"] == pytest.approx(3.0)
    assert rule_alpha([0.0], 2.0) == 1.0  # one unit: no ramp
    with pytest.raises(ValueError, match="init.max_factor"):
        Emergence(TorchDefault(), max_factor=0)


def test_layerwise_lr_control_reads_the_same_rule():
    model, example = build("mlp")
    opt = build_optimizer(model, name="sgd", lr=0.1, layerwise_lr={}, example=example)
    alpha = 2 ** (1 / 3)
    by_id = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for l, m in enumerate(linears):
        assert by_id[id(m.weight)] == pytest.approx(0.1 * alpha ** (-2 * (l - 3)))


def test_the_tables_show_alpha_L_and_the_extreme_factor():
    row = {"init": "emergence", "alpha": 2 ** (1 / 3), "n_units": 7, "alpha_max_factor": 2.0}
    assert init_label(row) == "emergence (α 1.26, L 7, ×2)"
    assert init_label({"init": "kaiming", "alpha": None}) == "kaiming"


# ---- item 3: the companion paper's classifier-only instance ----------------------------------------------------------
@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("case, factors", [("good", (0.5, 1, 2)), ("medium", (1, 1, 1)), ("low", (2, 1, 0.5))])
def test_classifier_presets_scale_exactly_the_three_linears(case, factors, norm, tmp_path):
    arch = "vgg19_head3" if norm == "batch" else "vgg19_head3_nobn"
    cfg = compose_train([f"arch={arch}", f"init=classifier_{case}", "data=synthetic", "arch.width=0.125"], tmp_path)
    assert cfg.arch.classifier == "three" and cfg.arch.norm == norm and cfg.init.layers == "classifier"
    base, ramped = (instantiate(cfg.arch, input_shape=IMG, num_classes=10) for _ in range(2))
    Kaiming()(base, (torch.randn(2, *IMG),), gen(3))
    stats = instantiate(cfg.init)(ramped, (torch.randn(2, *IMG),), gen(3))
    assert stats["n_units"] == 3
    for (name, b), r in zip(base.state_dict().items(), ramped.state_dict().values()):
        if name.startswith("classifier.fc") and name.endswith("weight"):
            assert torch.equal(r, b * factors[int(name[len("classifier.fc")])]), name
        else:
            assert torch.equal(r, b), name  # convs, BN, biases: untouched


def test_classifier_layers_need_a_classifier_module():
    model, example = build("mlp")
    with pytest.raises(ValueError, match="init.layers=classifier"):
        Emergence(Kaiming(), alpha=2.0, layers="classifier")(model, example, gen())


# ---- item 4: Transformer options -------------------------------------------------------------------------------------
def transformer_stats(preset="transformer_iwslt_de_en", **transformer):
    model, example = build(preset)
    return Emergence(TorchDefault(), transformer=transformer)(model, example, gen()), model


def exps(stats):
    return {k.removesuffix("/exponent"): v for k, v in stats.items() if k.endswith("/exponent")}


def test_transformer_default_ramp_is_joint_over_32_units_with_the_tied_embedding_at_the_decoder_head():
    stats, _ = transformer_stats()
    e = exps(stats)
    assert stats["n_units"] == 32 and e["encoder.embed_tokens"] == -15.5 and e["decoder.layers.5.ffn"] == 15.5
    assert e["decoder.embed_tokens"] == -2.5  # 13th unit: the readout shrinks by alpha^-2.5


@pytest.mark.parametrize("preset, first_exponent", [("transformer_iwslt_de_en", -2.5), ("transformer_wmt_en_de", -15)])
def test_tied_embedding_position_sets_the_readout_scale(preset, first_exponent):
    for position, exponent in (("first", first_exponent), ("last", None)):
        stats, model = transformer_stats(preset, tied_embedding=position)
        shared_first = preset.endswith("wmt_en_de") and position == "first"
        name = "encoder.embed_tokens" if shared_first else "decoder.embed_tokens"
        top = (stats["n_units"] - 1) / 2
        assert exps(stats)[name] == (top if position == "last" else exponent)
        assert stats[f"{name}/scale"] == pytest.approx(stats["alpha"] ** exps(stats)[name])
        if position == "last":  # the readout gets the extreme factor, max_factor = 2
            assert stats[f"{name}/scale"] == pytest.approx(2.0) and max(exps(stats).values()) == top
    base, _ = build(preset)
    stats, model = transformer_stats(preset, tied_embedding="last")
    ratio = model.decoder.output_weight().detach().norm() / base.decoder.output_weight().detach().norm()
    assert float(ratio) == pytest.approx(2.0, rel=1e-5)  # logits x 2 instead of x 0.89 (iwslt) / x 0.5 (wmt)


def test_transformer_per_stack_ramp_and_exclusions():
    stats, _ = transformer_stats(ramp="per_stack")
    e = exps(stats)
    assert e["encoder.embed_tokens"] == -6 and e["encoder.layers.5.ffn"] == 6  # 13 encoder units
    assert e["decoder.embed_tokens"] == -9 and e["decoder.layers.5.ffn"] == 9  # 19 decoder units
    assert stats["alpha_max_factor"] == pytest.approx(2.0)  # the rule uses the longer stack
    stats, model = transformer_stats(include_attention=False)
    assert stats["n_units"] == 14 and not any("attn" in k for k in exps(stats))
    stats, _ = transformer_stats(include_embeddings=False)
    assert stats["n_units"] == 30 and not any("embed" in k for k in exps(stats))


def test_transformer_options_raise_on_other_models_and_bad_values():
    model, example = build("mlp")
    with pytest.raises(ValueError, match="Transformer"):
        Emergence(Kaiming(), transformer={"include_attention": False})(model, example, gen())
    with pytest.raises(ValueError, match="init.transformer.ramp"):
        Emergence(Kaiming(), transformer={"ramp": "stacked"})


def test_kaiming_base_on_a_transformer_preset_changes_the_draws(tmp_path):
    kwargs = dict(src_vocab_size=30, tgt_vocab_size=30, pad_idx=0)
    example = (torch.randint(3, 30, (2, 5)), torch.randint(3, 30, (2, 4)))
    weights = {}
    for base in ("default", "kaiming"):
        extra = [] if base == "default" else ["init@init.base=kaiming"]
        cfg = compose_train(["arch=transformer_tiny", "init=emergence", "data=ding_de_en", *extra], tmp_path)
        init = instantiate(cfg.init)
        assert isinstance(init.base, FamilyDefault if base == "default" else Kaiming)
        model = instantiate(cfg.arch, **kwargs)
        stats = init(model, example, gen(3))
        weights[base] = model.encoder.layers[0].ffn.fc1.weight.detach().clone() / stats["encoder.layers.0.ffn/scale"]
        assert stats.get("base_is_xavier") == (1.0 if base == "default" else None)
    xavier = Transformer(30, 30, **{k: v for k, v in cfg.arch.items() if k != "_target_"})
    Xavier()(xavier, example, gen(3))
    torch.testing.assert_close(weights["default"], xavier.encoder.layers[0].ffn.fc1.weight)  # Xavier uniform draws
    fan_in = weights["kaiming"].shape[1]
    assert weights["kaiming"].std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)  # Kaiming normal
    assert not torch.allclose(weights["default"], weights["kaiming"])


# ---- item 5: GradInit's CIFAR baseline init and the no-BN ResNet lr rule --------------------------------------------
def test_kaiming_fan_out_gradinit_draws():
    torch.manual_seed(0)
    vgg = VGG(IMG, 10, depth=11, norm="batch", width=0.5, classifier="three")
    KaimingFanOutGradInit()(vgg, (), gen(1))
    for m in vgg.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * 9
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)
        elif isinstance(m, nn.Linear):
            assert m.weight.std().item() == pytest.approx(0.01, rel=0.05) and not m.bias.any()
    resnet = ResNet(IMG, 10, depth=20, norm="none", width=0.5)
    KaimingFanOutGradInit()(resnet, (), gen(1))
    (fc,) = [m for m in resnet.modules() if isinstance(m, nn.Linear)]
    bound = 1 / math.sqrt(fc.in_features)  # PyTorch's default Linear draw, as GradInit's ResNet keeps
    assert fc.weight.abs().max() <= bound and fc.weight.abs().max() > 0.9 * bound


@pytest.mark.parametrize("arch, expected", [("resnet20_nobn", 0.01), ("resnet20", None), ("vgg19_nobn", None)])
def test_paper_profile_trains_no_bn_resnet_biases_at_lr_0_01(arch, expected, tmp_path):
    cfg = compose_train(["experiment=cifar10_paper", f"arch={arch}", "init=kaiming", "arch.width=0.125"], tmp_path)
    assert cfg.optim.bias_scale_lr == expected
    model = instantiate(cfg.arch, input_shape=IMG, num_classes=10)
    opt = instantiate(cfg.optim)(model, example=(torch.randn(2, *IMG),))
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        small = expected is not None and (name.endswith("bias") or p.numel() == 1)
        assert lrs[id(p)] == pytest.approx(0.01 if small else cfg.optim.lr), name
    if expected:
        assert any(n.endswith("bias") for n, _ in model.named_parameters())
