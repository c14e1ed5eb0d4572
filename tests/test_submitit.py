"""A sweep through hydra-submitit-launcher's local executor: a job killed mid-run resumes when the sweep is rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from emergence import checkpoint
from tests.conftest import ROOT

ARGS = ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "arch=mlp", "init=kaiming,emergence",
        "data=digits", "arch.width=1024", "logger=none", "trainer.epochs=4", "trainer.batch_size=32",
        "trainer.checkpoint_every_steps=7", "name=submitit_test"]  # fmt: skip


def test_submitit_local_sweep_survives_a_killed_job(subprocess_env, tmp_path):
    cmd = [sys.executable, "-m", "emergence.train", *ARGS]
    sweep = subprocess.Popen(cmd, env=subprocess_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    victim, deadline = None, time.time() + 240
    while victim is None and time.time() < deadline and sweep.poll() is None:
        for ckpt in (tmp_path / "runs" / "submitit_test").rglob("checkpoint.pt"):
            try:
                if "init=emergence" in str(ckpt) and checkpoint.load(ckpt)["loop"]["step"] >= 7:
                    victim = ckpt.parent
            except checkpoint.CheckpointError:
                pass  # being written
        time.sleep(0.05)
    assert victim is not None, "no checkpoint appeared"
    pid = json.loads((victim / "run.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # a node dies under the job
    sweep.communicate(timeout=300)
    assert json.loads((victim / "run.json").read_text())["status"] == "running"

    rerun = subprocess.run(cmd, env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    runs = sorted((tmp_path / "runs" / "submitit_test").rglob("run.json"))
    assert len(runs) == 2
    assert all(json.loads(p.read_text())["status"] == "completed" for p in runs)
    assert "resuming" in (victim / "train.log").read_text()
    assert list((tmp_path / "runs" / "submitit_test" / ".submitit").iterdir())  # submitit's own job folders
