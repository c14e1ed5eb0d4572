"""Sweeps that survive: checkpoints, exact resume after SIGTERM or SIGKILL, corrupt checkpoints, failed writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from emergence import checkpoint
from emergence.log import read_metrics
from emergence.tasks.classification import ClassificationTask
from emergence.train import run
from tests.conftest import ROOT

# lr 0.04: at 0.05 the width-1024 digits run below diverges with the rule's alpha 2^(1/3) (not with 1.2599)
RESUMABLE = ["arch=mlp", "init=emergence", "trainer.epochs=3", "trainer.eval_every_steps=4",
             "diagnostics.every_steps=3", "trainer.checkpoint_every_steps=5", "optim.lr=0.04"]  # fmt: skip


def untimed(path):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(path)]


def test_sigterm_checkpoints_and_the_rerun_resumes_exactly(make_cfg, tmp_path, monkeypatch):
    reference = run(make_cfg(*RESUMABLE, run="reference"))
    calls = {"n": 0}
    original = ClassificationTask.loss

    def loss_then_signal(self, model, batch):
        calls["n"] += 1
        if calls["n"] == 37:  # mid-epoch (28 steps per epoch), between two step checkpoints
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, model, batch)

    monkeypatch.setattr(ClassificationTask, "loss", loss_then_signal)
    cfg = make_cfg(*RESUMABLE, run="interrupted")
    with pytest.raises(checkpoint.Preempted):
        run(cfg)
    info = json.loads((tmp_path / "interrupted" / "run.json").read_text())
    assert info["status"] == "preempted"
    assert checkpoint.load(tmp_path / "interrupted" / "checkpoint.pt")["loop"]["step"] == 37
    monkeypatch.setattr(ClassificationTask, "loss", original)
    resumed = run(cfg)
    assert resumed["status"] == "completed"
    assert untimed(tmp_path / "interrupted" / "metrics.jsonl") == untimed(tmp_path / "reference" / "metrics.jsonl")
    assert resumed["summary"]["val_acc_final"] == reference["summary"]["val_acc_final"]
    assert not (tmp_path / "interrupted" / "checkpoint.pt").exists()  # removed once the run completed


def test_sigkill_mid_epoch_then_rerun_gives_identical_metrics(subprocess_env, tmp_path):
    args = [sys.executable, "-m", "emergence.train", *RESUMABLE, "data=digits", "arch.width=1024", "logger=none",
            "trainer.epochs=4", "trainer.batch_size=32", "trainer.checkpoint_every_steps=7"]  # fmt: skip
    env_ref = {**subprocess_env, "EMERGENCE_RUNS": str(tmp_path / "reference")}
    env = {**subprocess_env, "EMERGENCE_RUNS": str(tmp_path / "killed")}
    ref = subprocess.run(args, env=env_ref, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]

    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ckpt = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").rglob("checkpoint.pt"))
        if found and checkpoint.load(found[0])["loop"]["step"] >= 14:
            ckpt = found[0]
            break
        time.sleep(0.02)
    assert ckpt is not None and proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = ckpt.parent
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    again = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout + again.stderr
    ref_dir = next((tmp_path / "reference").rglob("run.json")).parent
    assert untimed(run_dir / "metrics.jsonl") == untimed(ref_dir / "metrics.jsonl")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


def test_corrupt_checkpoint_is_refused_and_left_alone(make_cfg, tmp_path, monkeypatch, subprocess_env):
    cfg = make_cfg(*RESUMABLE)
    monkeypatch.setattr(ClassificationTask, "loss", _signal_at(20))
    with pytest.raises(checkpoint.Preempted):
        run(cfg)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # truncated
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or truncated"):
        run(cfg)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before


def _signal_at(n):
    original = ClassificationTask.loss
    calls = {"n": 0}

    def loss(self, model, batch):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGUSR1)
        return original(self, model, batch)

    return loss


def test_failed_metrics_write_keeps_earlier_records_and_resumes(make_cfg, tmp_path, monkeypatch):
    from emergence import log as log_module

    reference = run(make_cfg(*RESUMABLE, run="reference"))
    cfg = make_cfg(*RESUMABLE)
    original = log_module.RunLogger.log
    count = {"n": 0}

    def failing(self, metrics, step):
        count["n"] += 1
        if count["n"] == 30:
            raise OSError(28, "No space left on device")
        return original(self, metrics, step)

    monkeypatch.setattr(log_module.RunLogger, "log", failing)
    with pytest.raises(OSError):
        run(cfg)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 29  # everything before the failure is intact
    monkeypatch.setattr(log_module.RunLogger, "log", original)
    resumed = run(cfg)
    assert resumed["summary"]["val_acc_final"] == reference["summary"]["val_acc_final"]
    assert untimed(tmp_path / "run" / "metrics.jsonl") == untimed(tmp_path / "reference" / "metrics.jsonl")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["data=mnist", "data.root=/nonexistent"], 1, "make data"),
        (["init.alpha=0"], 2, "init.alpha=0 is invalid"),
        (["trainer.device=cuda:7"], 2, "CUDA is not available"),
    ],
)
def test_cli_errors_have_messages_and_exit_codes(args, code, message, subprocess_env, tmp_path):
    if "trainer.device=cuda:7" in args and torch.cuda.is_available():
        pytest.skip("a CUDA machine may have the device")
    out = subprocess.run([sys.executable, "-m", "emergence.train", "arch=mlp", "init=emergence", "logger=none", *args],
                         env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == code, out.stderr[-1500:]
    assert message in out.stdout + out.stderr
