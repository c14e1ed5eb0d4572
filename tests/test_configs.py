"""Configs: every arch x init file on disk composes and instantiates; bad values fail early with a clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate

from emergence import seeding
from emergence.components import initialize
from emergence.config import ConfigError, validate
from emergence.init import InitNotApplicable
from tests.conftest import CONF, ROOT, compose_train

ARCHS = sorted(p.stem for p in (CONF / "arch").glob("*.yaml"))
INITS = sorted(p.stem for p in (CONF / "init").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# data each arch family is tested with (image archs: the synthetic 1x8x8 images)


def data_overrides(arch: str, init: str, tmp_path) -> list[str]:
    """Image archs: synthetic 1x8x8 images (width 1/8 for VGG/ResNet). Transformers: a tiny xx->yy corpus, d 32.

    A learned init (one with ``iterations``/``batch_size`` keys) runs 2 iterations on small batches.
    """
    keys = set(compose_train([f"arch={arch}", f"init={init}"], tmp_path).init)
    small = [f"init.{k}={v}" for k, v in (("iterations", 2), ("max_iterations", 2)) if k in keys]
    if arch.startswith("transformer"):
        from tests.test_translation_task import corpus_overrides, write_corpus

        corpus = write_corpus(tmp_path / "corpus", n_train=60, n_eval=8)
        out = [*corpus_overrides(tmp_path, corpus), "arch.d_model=32", "arch.ffn_dim=64"]
        return out + small + (["init.batch_size=300"] if "batch_size" in keys else [])
    out = ["data=synthetic"] + (["arch.width=0.125"] if arch.startswith(("vgg", "resnet")) else [])
    return out + small + (["init.batch_size=16"] if "batch_size" in keys else [])


def build(cfg):
    task = instantiate(cfg.data).setup(torch.device("cpu"))
    model = instantiate(cfg.arch, **task.model_kwargs())
    return task, model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("init", INITS)
def test_every_arch_and_init_composes_and_instantiates(arch, init, tmp_path):
    cfg = compose_train([f"arch={arch}", f"init={init}", *data_overrides(arch, init, tmp_path)], tmp_path)
    validate(cfg)
    task, model = build(cfg)
    initializer = instantiate(cfg.init)
    if init.startswith("classifier_") and not arch.startswith(("vgg", "cnn")):  # the models with a classifier module
        with pytest.raises(ConfigError, match="init.layers=classifier"):
            initializer(model, task.example_inputs(), seeding.generator(0, "init"))
        return
    args = (initializer, model, task.example_inputs(), task, 0, torch.device("cpu"), tmp_path, "fp", False)
    try:
        stats, _ = initialize(*args)
    except InitNotApplicable as exc:  # a rule for another family (Fixup, T-Fixup) must say which option to choose
        assert "arch" in str(exc) and f"init={init}" in str(exc)
        return
    assert isinstance(stats, dict) and stats
    if init == "emergence":  # alpha from the max_factor rule: the extreme factor is 2 on every architecture
        assert stats["alpha_max_factor"] == pytest.approx(2.0) and stats["n_units"] >= 2
    optimizer = instantiate(cfg.optim)(model, example=task.example_inputs())
    instantiate(cfg.schedule)(optimizer, 10, 2)
    loss, _ = task.loss(model, next(task.train_batches(16, seeding.generator(0, "data"))))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, tmp_path):
    arch = ["arch=resnet20"] if experiment.startswith(("cnn", "cifar")) else []  # CNN experiments sweep the arch
    cfg = compose_train([f"experiment={experiment}", "init=kaiming", *arch], tmp_path)
    validate(cfg)
    assert cfg.name == experiment
    assert cfg.arch._target_ and cfg.optim.lr > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("init.alpha=0", "init.alpha"),
        ("init.alpha=-1.5", "init.alpha"),
        ("arch.depth=0", "arch.depth"),
        ("optim.lr=-0.1", "optim.lr"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.epochs=-1", "trainer.epochs"),
    ],
)
def test_bad_values_are_rejected_with_the_key(override, message, tmp_path):
    cfg = compose_train(["arch=mlp", "init=emergence", override], tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_constructors_reject_bad_names():
    from emergence.init.kaiming import Kaiming
    from emergence.models.mlp import MLP
    from emergence.optim import build_optimizer, build_schedule

    with pytest.raises(ValueError, match="arch.activation"):
        MLP((1, 8, 8), 10, activation="swish")
    with pytest.raises(ValueError, match="arch.norm"):
        MLP((1, 8, 8), 10, norm="layer")
    with pytest.raises(ValueError, match="init.mode"):
        Kaiming(mode="fan_avg")
    model = MLP((1, 8, 8), 10, depth=1, width=4)
    with pytest.raises(ValueError, match="optim.name"):
        build_optimizer(model, name="lion")
    with pytest.raises(ValueError, match="schedule.name"):
        build_schedule(build_optimizer(model), 10, 1, name="step")


def cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "emergence.train", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["arch=mlp", "init=emergence", "init.alpha=-1"], "init.alpha=-1"),
        (["arch=mlp", "init=classifier_good"], "init.layers=classifier"),
        (["arch=mlp", "init=emergence", "arch.depth=0"], "arch.depth=0"),
        (["arch=mlp", "init=nope"], "Could not find 'init/nope'"),
        (["arch=resnet9000", "init=kaiming"], "Could not find 'arch/resnet9000'"),
        (["arch=mlp", "init=kaiming", "data=imagenet21k"], "Could not find 'data/imagenet21k'"),
        (["init=kaiming"], "choose arch=... explicitly"),
    ],
)
def test_cli_bad_input_exits_nonzero_with_message(args, message, subprocess_env, tmp_path):
    data = [] if any(a.startswith("data=") for a in args) else ["data=synthetic"]
    out = cli(*args, *data, "logger=none", env=subprocess_env)
    assert out.returncode != 0
    assert message in out.stderr + out.stdout
    assert not list(tmp_path.rglob("metrics.jsonl"))  # failed before training


def test_missing_data_folder_gives_instructions(tmp_path):
    from hydra.utils import instantiate

    from emergence.config import group_config

    with pytest.raises(FileNotFoundError, match="make data"):
        instantiate(group_config("data", "mnist").reader)(tmp_path / "nowhere")
