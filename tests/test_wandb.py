"""W&B: offline runs land in the run dir with the suite's names and tags, are finished on a crash, resume their id."""

from __future__ import annotations

import json

import pytest

from emergence.tasks.classification import ClassificationTask
from emergence.train import run


def offline_runs(run_dir):
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_offline_run_is_written_into_the_run_dir(make_cfg, tmp_path):
    record = run(make_cfg("arch=mlp", "init=xavier", "logger=wandb", "logger.mode=offline"))
    assert record["status"] == "completed"
    runs = offline_runs(tmp_path / "run")
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["wandb_id"] and runs[0].name.endswith(info["wandb_id"])
    assert record["labels"]["name"] == "mlp-xavier-s0"
    assert "arch:mlp" in record["labels"]["tags"] and "init:xavier" in record["labels"]["tags"]


def test_disabled_mode_writes_no_wandb_files(make_cfg, tmp_path):
    run(make_cfg("arch=mlp", "init=xavier", "logger=wandb", "logger.mode=disabled"))
    assert not offline_runs(tmp_path / "run")
    assert (tmp_path / "run" / "metrics.jsonl").exists()  # the local files are always written


def test_crashing_run_still_finishes_its_wandb_run(make_cfg, tmp_path, monkeypatch):
    import wandb

    def boom(self, model, batch):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(ClassificationTask, "loss", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(make_cfg("arch=mlp", "init=xavier", "logger=wandb", "logger.mode=offline"))
    assert wandb.run is None  # finished: a later run in this process does not log into it
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_resumed_run_continues_the_same_wandb_id(make_cfg, tmp_path, monkeypatch):
    import os
    import signal

    from emergence import checkpoint

    original = ClassificationTask.loss
    calls = {"n": 0}

    def loss(self, model, batch):
        calls["n"] += 1
        if calls["n"] == 10:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, model, batch)

    monkeypatch.setattr(ClassificationTask, "loss", loss)
    cfg = make_cfg("arch=mlp", "init=xavier", "logger=wandb", "logger.mode=offline", "trainer.checkpoint_every_steps=4")
    with pytest.raises(checkpoint.Preempted):
        run(cfg)
    first_id = json.loads((tmp_path / "run" / "run.json").read_text())["wandb_id"]
    monkeypatch.setattr(ClassificationTask, "loss", original)
    record = run(cfg)
    assert record["wandb_id"] == first_id
    names = [r.name for r in offline_runs(tmp_path / "run")]
    assert len(names) == 2 and all(first_id in n for n in names)  # offline-run-<time>-<id>[-1]: one id


def test_online_without_api_key_falls_back_to_offline(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    run(make_cfg("arch=mlp", "init=xavier", "logger=wandb", "logger.mode=online"))
    assert offline_runs(tmp_path / "run")
