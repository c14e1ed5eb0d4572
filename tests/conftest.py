"""Shared fixtures: compose conf/train.yaml with the compose API and shrink it (synthetic data, no W&B, tmp dirs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
SMALL = [
    "data=synthetic",
    "logger=none",
    "trainer.epochs=1",
    "trainer.batch_size=64",
    "trainer.progress=false",
    "arch.depth=2",
    "arch.width=32",
]

torch.set_num_threads(1)


def arch_model(name: str, *args, **overrides):
    """The model of conf/arch/<name>.yaml (its sizes and dropouts, as a run builds it); ``args``/``overrides``: the
    constructor's data-dependent arguments and any key to replace (e.g. vocab sizes, ``d_model=16``)."""
    from hydra.utils import instantiate

    from emergence.config import group_config

    return instantiate(group_config("arch", name), *args, **overrides)


def compose_train(overrides, tmp_path: Path, hydra_config: bool = True):
    """The composed run config, with HydraConfig set so labels resolve as under @hydra.main."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        paths = [f"paths.root={tmp_path}", f"paths.runs_dir={tmp_path}/runs"]
        cfg = compose("train", overrides=[*paths, *overrides], return_hydra_config=hydra_config)
    if hydra_config:
        HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path / "run")
        cfg.pop("hydra", None)
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    def _make(*overrides, small=True, run="run"):
        cfg = compose_train([*(SMALL if small else []), *overrides], tmp_path)
        with open_dict(cfg):
            cfg.run_dir = str(tmp_path / run)
        return cfg

    return _make


def python_cmd():
    return [sys.executable]


@pytest.fixture
def subprocess_env(tmp_path):
    env = dict(os.environ)
    env.update(
        {
            "EMERGENCE_ROOT": str(tmp_path),
            "EMERGENCE_RUNS": str(tmp_path / "runs"),
            "WANDB_MODE": "offline",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.pop("EMERGENCE_RESULTS", None)
    return env
