"""GradInit (docs/gradinit.md): objective steps lower the lookahead loss, constraint steps lower ‖g‖, clamps hold, BN
buffers / flags / zero tensors / directions are untouched, results are seeded and cacheable, double backward works."""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from emergence.data.images import read_synthetic
from emergence.init import InitBatch
from emergence.init.gradinit import GradInit, RescaleAdam, walk
from emergence.init.kaiming import Kaiming
from emergence.init.torch_default import TorchDefault
from emergence.models.cnn import SmallCNN
from emergence.models.mlp import MLP
from emergence.models.resnet import ResNet
from emergence.models.vgg import VGG
from emergence.tasks.classification import ClassificationTask
from tests.conftest import CONF, arch_model, compose_train

CPU = torch.device("cpu")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class FixedTask:
    """The same three half-batches at every draw: GradInit on one fixed batch (ids in column 0 when asked)."""

    def __init__(self, shape=(1, 8, 8), n=48, classes=10, seed=0):
        g = gen(seed)
        self.x, self.y = torch.randn(n, *shape, generator=g), torch.randint(classes, (n,), generator=g)
        self.parts = tuple((self.x[i::3], self.y[i::3]) for i in range(3))

    def init_batches(self, batch_size, generator, kind="thirds"):
        while True:
            yield tuple(InitBatch(p, self.inputs, self.criterion, self.merge) for p in self.parts)

    merge = staticmethod(ClassificationTask.merge)
    inputs = staticmethod(ClassificationTask.inputs)

    @staticmethod
    def criterion(logits, batch):
        return F.cross_entropy(logits, batch[1])


def synthetic(shape=(1, 8, 8), n_train=512):
    reader = dict(n_train=n_train, n_test=32, shape=list(shape))
    return ClassificationTask("synthetic", val_size=32, reader=partial(read_synthetic, **reader)).setup(CPU)


def gradinit(**kw):
    args = dict(base=TorchDefault(), gamma=1e9, lr=0.05, iterations=10, batch_size=32)
    return GradInit(**{**args, **kw})


def run(model, task, init, seed=0):
    """GradInit as ``components.initialize`` calls it: its batches drawn with its own generator, after the base init."""
    g = gen(seed)
    example = (task.x[:2],) if hasattr(task, "x") else task.example_inputs()
    return init(model, example, g, batches=task.init_batches(init.batch_size, g, init.batch_kind), device=CPU)


def lookahead_loss(model, task, eta=0.1):
    """L(S̃; θ − η g/‖g‖) with g = ∇L(S; θ): the quantity GradInit's objective steps minimize."""
    b0, b1, b2 = task.parts
    s, s_tilde = task.merge(b0, b1), task.merge(b0, b2)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(task.criterion(model(s[0]), s), list(params.values()))
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    stepped = {n: p.detach() - eta * g / norm for (n, p), g in zip(params.items(), grads)}
    with torch.no_grad():
        return float(task.criterion(torch.func.functional_call(model, stepped, (s_tilde[0],)), s_tilde))


def grad_norm(model, task):
    b0, b1, _ = task.parts
    s = task.merge(b0, b1)
    grads = torch.autograd.grad(task.criterion(model(s[0]), s), list(model.parameters()))
    return float(torch.sqrt(sum(g.square().sum() for g in grads)))


def mlp(norm="none", seed=0):
    torch.manual_seed(seed)
    return MLP((1, 8, 8), 10, depth=3, width=32, norm=norm)


def test_gradinit_objective_steps_lower_the_lookahead_loss():
    task, model = FixedTask(), mlp()
    before = lookahead_loss(model, task)
    stats = run(model, task, gradinit(lr=0.1, iterations=15))
    assert stats["gradinit/n_objective"] == 15 and stats["gradinit/n_constraint"] == 0
    assert lookahead_loss(model, task) < before - 0.05


def test_gradinit_tiny_gamma_takes_only_constraint_steps_and_lowers_grad_norm():
    task, model = FixedTask(), mlp()
    before = grad_norm(model, task)
    stats = run(model, task, gradinit(gamma=1e-6, iterations=15))
    assert stats["gradinit/n_constraint"] == 15 and stats["gradinit/n_objective"] == 0
    assert math.isnan(stats["gradinit/loss1_last"])
    assert grad_norm(model, task) < 0.8 * before


def test_gradinit_scales_respect_their_clamps():
    task, model = FixedTask(), mlp(norm="batch")  # torch default: nonzero biases, BN gamma = 1
    init = gradinit(lr=0.3, iterations=12, gamma=1e-6, min_scale=0.5, bias_min_scale=0.3, norm_max_scale=1.1)
    stats = run(model, task, init)
    groups = {e.name: e.group for e in walk(model)[0]}
    scales = {k.split("/")[1]: v for k, v in stats.items() if k.endswith("/scale")}
    assert {groups[n] for n in scales} == {"weight", "bias", "norm"}
    for name, a in scales.items():
        low = 0.3 if groups[name] == "bias" else 0.5
        high = 1.1 if groups[name] == "norm" else math.inf
        assert low <= a <= high, (name, a)
    assert any(a in (0.3, 0.5, 1.1) for a in scales.values())  # some clamp was reached and held


def test_rescale_adam_moves_each_scale_by_lr_per_step():
    opt = RescaleAdam(
        3,
        lr=1e-2,
        betas=(0.9, 0.999),
        eps=1e-8,
        grad_clip=1.0,
        lower=torch.tensor([0.01, 0.01, 0.97], dtype=torch.float64),
        upper=torch.full((3,), math.inf),
    )
    for _ in range(6):
        alpha = opt.step(torch.tensor([5.0, -0.2, 3.0]), "objective")
    assert alpha[0] == pytest.approx(0.94, abs=1e-9)  # clipped to 1: exactly lr per step (docs/gradinit.md)
    assert alpha[1] > 1 and alpha[2] == 0.97


def rescale_adam(n=1, second_moment="shared", lower=0.0, lr=1e-2):
    one = torch.ones(n, dtype=torch.float64)
    return RescaleAdam(n, lr, (0.9, 0.999), 1e-8, 1.0, lower * one, math.inf * one, second_moment)


def test_rescale_adam_one_constraint_then_one_objective_step_moves_alpha_by_lr():
    """The issue's reproduction: the official optimizer moves α by 0.0100 here (the total-count correction: 0.00526)."""
    opt, one = rescale_adam(), torch.ones(1)
    before = float(opt.step(one, "constraint")[0])
    assert before == pytest.approx(1 - 1e-2, abs=1e-9)
    step = before - float(opt.step(one, "objective")[0])
    assert step == pytest.approx(0.0100, abs=1e-6)


@pytest.mark.parametrize("second_moment", ["shared", "separate"])
def test_rescale_adam_bias_correction_follows_the_variant(second_moment):
    """First moments: each kind's own count. Second moment (hand computation for a gradient of 1 in every step):
    shared, after 10 constraint steps and 1 objective step v = 1 - b2^11 and its correction uses the total 11, so
    v̂ = 1; separate, the objective's own v = 1 - b2 with count 1. Both give m̂/√v̂ = 1: α moves by exactly lr."""
    opt, one = rescale_adam(second_moment=second_moment), torch.ones(1)
    for _ in range(10):
        before = float(opt.step(one, "constraint")[0])
    step = before - float(opt.step(one, "objective")[0])
    assert step == pytest.approx(1e-2, rel=1e-6)  # total-count correction of m: 0.15 lr


def test_rescale_adam_shared_second_moment_mixes_both_kinds():
    """Constraint gradients 1, then an objective gradient of 0.5: with a shared v, v̂ = (b2(1-b2)·1 + (1-b2)·0.25) /
    (1-b2^2), m̂ = 0.5, so the step is lr·0.5/√v̂ (hand computation); separate: v̂ = 0.25, the step is lr."""
    b2 = 0.999
    v_hat = (b2 * (1 - b2) + (1 - b2) * 0.25) / (1 - b2**2)
    for second_moment, expected in (("shared", 1e-2 * 0.5 / math.sqrt(v_hat)), ("separate", 1e-2)):
        opt = rescale_adam(second_moment=second_moment)
        before = float(opt.step(torch.ones(1), "constraint")[0])
        step = before - float(opt.step(torch.full((1,), 0.5), "objective")[0])
        assert step == pytest.approx(expected, rel=1e-6), second_moment


def test_rescale_adam_freezes_a_scale_that_reaches_zero():
    """Official: a tensor whose norm is 0 is skipped from then on, so a bias scale clamped to 0 stays 0."""
    opt = rescale_adam(n=2, lr=0.6)
    opt.step(torch.ones(2), "objective")  # 1 - 0.6 = 0.4
    opt.step(torch.ones(2), "objective")  # 0.4 - 0.6 -> clamped to 0: both frozen
    assert opt.alpha.tolist() == [0.0, 0.0] and opt.frozen.all()
    for _ in range(3):  # gradients that would push the scales back up
        alpha = opt.step(-torch.ones(2), "objective")
    assert alpha.tolist() == [0.0, 0.0]


class DropBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)
        )

    def forward(self, x):
        return self.net(x)


def test_gradinit_leaves_bn_buffers_and_module_flags_untouched():
    torch.manual_seed(0)
    model, task = DropBN(), FixedTask()
    model.net[2](torch.randn(16, 32))  # non-default running stats
    model.net[1].eval()  # an odd flag pattern that must survive
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    flags = [m.training for m in model.modules()]
    seen = {}
    for m in (model.net[2], model.net[4]):
        m.register_forward_hook(lambda mod, i, o: seen.setdefault(type(mod).__name__, set()).add(mod.training))
    run(model, task, gradinit(gamma=1.0, iterations=6))
    assert seen == {"BatchNorm1d": {True}, "Dropout": {False}}  # batch statistics, dropout off
    assert [m.training for m in model.modules()] == flags
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n]), n


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_gradinit_keeps_zero_tensors_zero_and_directions(norm):
    task = synthetic((3, 8, 8))
    torch.manual_seed(0)
    model = ResNet((3, 8, 8), 10, depth=8, norm=norm)
    reference = copy.deepcopy(model)
    Kaiming()(reference, (), gen(3))  # the base init GradInit runs first, same generator state
    stats = run(model, task, gradinit(base=Kaiming(), gamma=1.0, iterations=6), seed=3)
    skipped = set(stats["gradinit/skipped"].split(","))
    base = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        if name in skipped:
            assert torch.all(base[name] == 0) and torch.all(p == 0), name
            continue
        a, b = p.detach().double().flatten(), base[name].detach().double().flatten()
        assert float(a @ b / (a.norm() * b.norm())) == pytest.approx(1.0, abs=1e-6), name
        torch.testing.assert_close(p, base[name] * stats[f"gradinit/{name}/scale"], rtol=1e-5, atol=1e-7)
    assert any(abs(v - 1) > 1e-3 for k, v in stats.items() if k.endswith("/scale"))


def test_gradinit_same_seed_gives_same_scales():
    task = synthetic()
    results = []
    for seed in (0, 0, 1):
        model = mlp()
        init = gradinit(base=Kaiming(), gamma=1.0, iterations=5, grad_clip=None)  # unclipped: scales depend on data
        stats = run(model, task, init, seed=seed)
        results.append(({k: v for k, v in stats.items() if k.endswith("/scale")}, list(model.parameters())))
    (s0, p0), (s1, p1), (s2, p2) = results
    assert s0 == s1 and all(torch.equal(a, b) for a, b in zip(p0, p1))
    assert s0 != s2 and not torch.equal(p0[0], p2[0])


def test_gradinit_batches_overlap_by_half_unless_disjoint():
    task = synthetic(n_train=300)  # no augmentation: an image's bytes identify it

    def ids(batch):
        return {row.numpy().tobytes() for row in batch.raw[0].flatten(1)}

    for overlap, shared in ((True, 16), (False, 0)):
        init = gradinit(overlap=overlap)
        s, make_s_tilde = init._pair(next(task.init_batches(init.batch_size, gen(), init.batch_kind)), CPU)
        s_tilde = make_s_tilde()
        assert len(s.raw[0]) == len(s_tilde.raw[0]) == len(ids(s)) == 32
        assert len(ids(s) & ids(s_tilde)) == shared


def test_gradinit_cache_round_trips_and_rejects_corrupt_files(tmp_path):
    task, model = FixedTask(), mlp()
    init = gradinit(base=Kaiming(), gamma=1.0, iterations=3)
    stats = run(model, task, init)
    path = tmp_path / "gradinit.pt"
    init.save(path, key="cfg-seed0")
    fresh = mlp(seed=1)
    loaded = gradinit().load(fresh, path, key="cfg-seed0")
    assert loaded["gradinit/cached"] == 1 and loaded["gradinit/n_objective"] == stats["gradinit/n_objective"]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
    assert gradinit().load(mlp(), tmp_path / "missing.pt") is None
    assert gradinit().load(mlp(), path, key="another-config") is None
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable GradInit cache"):
        gradinit().load(mlp(), path)


MODELS = {
    "mlp": lambda: MLP((3, 8, 8), 10, depth=2, width=16),
    "cnn_bn": lambda: SmallCNN((3, 8, 8), 10, channels=(8, 8), hidden=16, norm="batch"),
    "vgg11": lambda: VGG((3, 8, 8), 10, depth=11, norm="none", width=0.125),
    "vgg11_bn": lambda: VGG((3, 8, 8), 10, depth=11, norm="batch", width=0.125),
    "resnet20": lambda: ResNet((3, 8, 8), 10, depth=20, norm="batch", width=0.5),
    "resnet8_nobn": lambda: ResNet((3, 8, 8), 10, depth=8, norm="none"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradinit_runs_on_every_model_family(name):
    torch.manual_seed(0)
    model, task = MODELS[name](), synthetic((3, 8, 8))
    stats = run(model, task, gradinit(base=Kaiming(), gamma=1.0, iterations=3, batch_size=16))
    assert stats["gradinit/n_constraint"] + stats["gradinit/n_objective"] == 3
    assert all(math.isfinite(v) for k, v in stats.items() if k.endswith("/scale"))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_gradinit_resnet_bn_scales_follow_the_fig1_pattern():
    """GradInit's Fig. 1: every conv scale grows above 1; in each block the last BN gets the block's smallest scale."""
    torch.manual_seed(0)
    model, task = ResNet((3, 8, 8), 10, depth=14, norm="batch", width=0.5), synthetic((3, 8, 8))
    stats = run(model, task, gradinit(base=Kaiming(), gamma=1.0, iterations=30))
    scales = {k.split("/")[1]: v for k, v in stats.items() if k.endswith("/scale")}
    assert all(v > 1 for k, v in scales.items() if "conv" in k)
    blocks = {k.rsplit(".", 2)[0] for k in scales if ".block" in k}
    for block in blocks:
        assert scales[f"{block}.bn2.weight"] == min(v for k, v in scales.items() if k.startswith(block + ".")), block


class Attention(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, 10)

    def forward(self, x):  # x: N x 1 x 8 x 8 -> 8 tokens of 8 features
        q, k, v = self.qkv(x.flatten(0, 1)).unflatten(-1, (3, 2, -1)).permute(2, 0, 3, 1, 4)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2).mean(1))


def test_gradinit_double_backward_works_through_sdpa():
    torch.manual_seed(0)
    model, task = Attention(), FixedTask()
    stats = run(model, task, gradinit(gamma=1e-6, iterations=3))  # constraint steps: double backward
    assert stats["gradinit/n_constraint"] == 3
    assert all(abs(v - 1) > 1e-3 for k, v in stats.items() if k.endswith("/scale"))


class TinyTranslation:
    """Fixed-length synthetic 'translation' (target = source shifted by one id), the task API GradInit uses."""

    def __init__(self, vocab=16, n=48, length=6):
        src = torch.randint(3, vocab, (n, length), generator=gen(0))
        src[: n // 2, -2:] = 0  # some padding
        tgt = torch.where(src > 0, (src - 2) % (vocab - 3) + 3, src)
        self.data = (src, torch.cat([torch.ones(n, 1, dtype=torch.long), tgt[:, :-1]], 1), tgt)

    def init_batches(self, batch_size, generator, kind="thirds"):
        while True:
            idx = torch.randperm(len(self.data[0]), generator=generator)[: 3 * (batch_size // 2)]
            parts = (tuple(t[part] for t in self.data) for part in idx.chunk(3))
            yield tuple(InitBatch(p, self.inputs, self.criterion, self.merge) for p in parts)

    @staticmethod
    def example_inputs():
        return ()  # the base init here needs no forward pass

    @staticmethod
    def merge(a, b):
        return tuple(torch.cat([x, y]) for x, y in zip(a, b))

    @staticmethod
    def inputs(batch):
        return batch[0], batch[1]

    @staticmethod
    def criterion(logits, batch):
        return F.cross_entropy(logits.flatten(0, 1), batch[2].flatten(), ignore_index=0, label_smoothing=0.1)


def test_gradinit_runs_on_the_tiny_transformer():
    torch.manual_seed(0)
    # the default (fused-capable) SDPA path; one embedding shared by encoder, decoder and readout
    model = arch_model("transformer_tiny", 16, 16, share_all_embeddings=True)
    task = TinyTranslation()
    init = GradInit(
        Kaiming(),
        gamma=1e-6,
        target_optimizer="adam",
        eta=1e-3,
        lr=2.5e-3,
        iterations=2,
        batch_size=16,
        norm_max_scale=100.0,
        betas=(0.9, 0.98),
        grad_clip=1e8,
        second_moment="separate",
    )
    stats = run(model, task, init)
    assert stats["gradinit/n_constraint"] == 2
    scaled = {k.split("/")[1] for k in stats if k.endswith("/scale")}
    assert "encoder.embed_tokens.weight" in scaled and "decoder.embed_tokens.weight" not in scaled  # tied: one scale
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(gamma=0), "init.gamma"),
        (dict(target_optimizer="lamb"), "init.target_optimizer"),
        (dict(batch_size=33), "init.batch_size"),
        (dict(eta=-1), "init.eta"),
        (dict(norm_max_scale=0.001), "init.norm"),
        (dict(betas=(0.9, 1.0)), "init.betas"),
        (dict(base=None), "init.base"),
        (dict(grad_clip=0), "init.grad_clip"),
    ],
)
def test_gradinit_rejects_bad_arguments_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        gradinit(**kwargs)


def test_gradinit_config_instantiates_with_the_family_base_and_arch_settings(tmp_path):
    from hydra.utils import instantiate

    from emergence.init.family_default import FamilyDefault

    cfg = compose_train(["arch=mlp", "init=gradinit", "data=synthetic"], tmp_path)
    init = instantiate(cfg.init)
    assert isinstance(init, GradInit) and isinstance(init.base, FamilyDefault) and init.needs_data
    kaiming = compose_train(["arch=mlp", "init=gradinit", "init@init.base=kaiming", "data=synthetic"], tmp_path)
    assert isinstance(instantiate(kaiming.init).base, Kaiming)
    assert init.lr == OmegaConf.load(CONF / "arch_init" / "mlp_gradinit.yaml").init.lr
    for path in (CONF / "arch_init").glob("*_gradinit.yaml"):
        node = OmegaConf.load(path)
        assert set(node) == {"init"} and {"lr", "iterations", "batch_size", "gamma"} <= set(node.init), path.name
    # the official launch script's tau where one exists (ResNet-110 with BN: 1e-3)
    official = {"vgg19": 1e-1, "vgg19_nobn": 1e-2, "resnet110": 1e-3, "resnet110_nobn": 5e-2}
    for arch, tau in official.items():
        assert OmegaConf.load(CONF / "arch_init" / f"{arch}_gradinit.yaml").init.lr == tau, arch
    archs = {p.stem for p in (CONF / "arch").glob("*.yaml")}
    assert archs <= {p.stem.removesuffix("_gradinit") for p in (CONF / "arch_init").glob("*_gradinit.yaml")}


def test_gradinit_results_do_not_depend_on_when_g_gets_its_graph(monkeypatch):
    """g is built with a graph after a constraint step only; always / never building it gives the same scales."""
    task = FixedTask()
    scales = {}
    for policy in ("after_constraint", "always", "never"):
        monkeypatch.setattr(GradInit, "_graph_first", policy)
        stats = run(mlp(norm="batch"), task, gradinit(gamma=1.5, iterations=12))
        kinds = {k: stats[f"gradinit/n_{k}"] for k in ("constraint", "objective")}
        scales[policy] = {k: v for k, v in stats.items() if k.endswith("/scale")}
    assert kinds["constraint"] >= 2 and kinds["objective"] >= 2, kinds  # both kinds and a switch between them
    assert scales["always"] == scales["after_constraint"] == scales["never"]
