"""Sweeps that survive: checkpoints, exact resume after SIGTERM or SIGKILL, corrupt checkpoints, failed writes."""

from __future__ import annotations

import json
import os
import random
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


# ---- exact resume from every kind of checkpoint (SIGKILL at chosen moments, tests/kill_run.py) ----------------------
KILLABLE = ["arch=mlp", "init=emergence", "data=digits", "logger=none", "arch.depth=2", "arch.width=64",
            "trainer.epochs=3", "trainer.batch_size=64", "trainer.eval_every_steps=4", "diagnostics.every_steps=3",
            "trainer.checkpoint_every_steps=7", "trainer.progress=false", "optim.lr=0.05"]  # fmt: skip
# digits: 1200 training images / 64 = 18 steps per epoch; checkpoints at steps 7, 14, 18 (end of epoch 1), 21, 28, ...
TIMING_SUMMARY = ("wall_s_to_target",)


def _train(tmp_path, name, spec=None, extra=(), env=None):
    cmd = [sys.executable, "-m", "tests.kill_run", spec] if spec else [sys.executable, "-m", "emergence.train"]
    env = {**env, "EMERGENCE_RUNS": str(tmp_path / name)}
    return subprocess.run([*cmd, *KILLABLE, *extra], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _outcome(tmp_path, name):
    run_dir = next((tmp_path / name).rglob("metrics.jsonl")).parent
    info = json.loads((run_dir / "run.json").read_text())
    summary = {k: v for k, v in info["summary"].items() if k not in TIMING_SUMMARY}
    counters = {k: info[k] for k in ("status", "steps", "epochs", "samples_seen")}
    return untimed(run_dir / "metrics.jsonl"), summary, counters, run_dir


def _kill_and_resume(tmp_path, env, name, specs, extra=()):
    """SIGKILL the run at each moment of ``specs`` in turn (each kill in the rerun of the previous one), then rerun it
    to completion; returns its outcome."""
    for spec in specs:
        killed = _train(tmp_path, name, spec, extra, env)
        assert killed.returncode == -signal.SIGKILL, (spec, killed.returncode, killed.stderr[-2000:])
        if spec.startswith("ckpt_tmp"):  # killed during the write: the temporary file is on disk, complete
            assert list((tmp_path / name).rglob("checkpoint.pt.tmp"))
    again = _train(tmp_path, name, None, extra, env)
    assert again.returncode == 0, (specs, again.stderr[-2000:])
    return _outcome(tmp_path, name)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted run of KILLABLE: (untimed metrics, summary, counters)."""
    tmp = tmp_path_factory.mktemp("reference")
    env = {**os.environ, "EMERGENCE_ROOT": str(tmp), "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    env.pop("EMERGENCE_RESULTS", None)
    ref = _train(tmp, "reference", env=env)
    assert ref.returncode == 0, ref.stderr[-2000:]
    return _outcome(tmp, "reference")[:3]


@pytest.mark.parametrize(
    "specs, what",
    [
        (["runjson:1", "ckpt:3"], "during start-up, then right after the end-of-epoch-1 checkpoint of the rerun"),
        (["step:12", "ckpt_tmp:2"], "mid-epoch, then during the rerun's end-of-epoch checkpoint write (.tmp on disk)"),
    ],
)
def test_sigkill_at_any_moment_resumes_exactly(specs, what, reference_run, subprocess_env, tmp_path):
    metrics, summary, counters, run_dir = _kill_and_resume(tmp_path, subprocess_env, "killed", specs)
    assert counters == reference_run[2] and counters["status"] == "completed", what
    assert metrics == reference_run[0], what
    assert summary == reference_run[1], what
    assert not (run_dir / "checkpoint.pt.tmp").exists()


def _random_moments(n: int, seed: int = 2026) -> list[list[str]]:
    """n kill plans, a fifth each at start-up and at an epoch boundary, the rest mid-epoch or during a checkpoint
    write, at random steps and checkpoints; some resumed runs are killed a second time."""
    rng = random.Random(seed)
    steps, checkpoints = 54, 9  # KILLABLE: 3 epochs x 18 steps; checkpoints at 7, 14, 18, 21, 28, 35, 36, 42, 49
    moments = {
        "startup": lambda: rng.choice(["runjson:1", "setup:1", "step:1"]),  # step:1: set up, nothing trained
        "boundary": lambda: rng.choice(["ckpt:3", "ckpt:7", "step:19", "step:37"]),  # just after epoch 1 or 2 ended
        "mid-epoch": lambda: f"step:{rng.choice([s for s in range(1, steps + 1) if s not in (19, 37)])}",
        "checkpoint write": lambda: f"ckpt_tmp:{rng.randint(1, checkpoints)}",
    }
    kinds = ["startup", "boundary"] * (n // 5) + ["mid-epoch", "checkpoint write"] * ((n - 2 * (n // 5)) // 2)
    kinds += ["mid-epoch"] * (n - len(kinds))
    rng.shuffle(kinds)
    return [[moments[k]()] + ([f"step:{rng.randint(1, 12)}"] if rng.random() < 0.3 else []) for k in kinds]


@pytest.mark.slow
def test_twenty_random_sigkills_all_resume_identically(reference_run, subprocess_env, tmp_path):
    """The figure of issue 10: 20 runs SIGKILLed at random moments (start-up, mid-epoch, at an epoch boundary, during
    a checkpoint write; some twice) and rerun to completion; every one must equal the uninterrupted run."""
    identical, plans = 0, _random_moments(20)
    for i, plan in enumerate(plans):
        name = f"killed{i}"
        for k, spec in enumerate(plan):
            out = _train(tmp_path, name, spec, env=subprocess_env)
            assert out.returncode == -signal.SIGKILL or (k > 0 and out.returncode == 0), (plan, out.stderr[-2000:])
        final = _train(tmp_path, name, env=subprocess_env)
        assert final.returncode == 0, (plan, final.stderr[-2000:])
        metrics, summary, counters, run_dir = _outcome(tmp_path, name)
        same = (metrics, summary, counters) == reference_run and not (run_dir / "checkpoint.pt.tmp").exists()
        identical += same
        print(f"kill plan {i:2d} {' then '.join(plan):24s} identical={same}")
    print(f"{identical} of {len(plans)} resumed runs identical to the uninterrupted run")
    assert identical == len(plans)
