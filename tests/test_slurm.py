"""Sweeps through the real CLI and ``hydra/launcher=slurm`` on a real single-node SLURM (tests/slurm_cluster.py).

Each test is one sweep as a user would type it, with CPU resources: a sweep completes and its rerun trains nothing;
``scontrol requeue`` preempts a run, which checkpoints, exits ``preempted`` and, restarted by SLURM, ends with the
metrics of an uninterrupted run; a time limit shorter than the training signals the run ``signal_delay_s`` early and
submitit requeues it; a failed job is reported while the others complete; ``array_parallelism=1`` runs one job at a
time. SLURM holds a requeued job for two minutes before restarting it; the tests release it at once
(``scontrol update starttime=now``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.slurm_cluster import slurm  # noqa: F401  (the session's cluster)

LAUNCH = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=cpu", "hydra.launcher.gpus_per_node=0",
          "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=5"]  # fmt: skip
TINY = ["arch=mlp", "data=digits", "arch.width=32", "arch.depth=2", "logger=none", "trainer.epochs=1",
        "trainer.cpu_threads=1", "trainer.progress=false"]  # fmt: skip
# long enough (6 epochs x 37 steps of a 5M-parameter MLP) to be caught mid-epoch, with a checkpoint every 7 steps
LONG = ["arch=mlp", "init=kaiming", "data=digits", "arch.width=1024", "logger=none", "trainer.epochs=6",
        "trainer.batch_size=32", "trainer.checkpoint_every_steps=7", "trainer.cpu_threads=1",
        "trainer.progress=false"]  # fmt: skip


@pytest.fixture
def cluster(slurm, subprocess_env):  # noqa: F811
    """The session's cluster; whatever a test leaves queued or running is cancelled after it."""
    slurm.test_env = slurm.env(subprocess_env)
    yield slurm
    leftover = sorted({j.split("_")[0] for j, info in slurm.jobs().items() if info["state"] in UNFINISHED})
    if leftover:
        slurm.cmd("scancel", *leftover, check=False)
        wait_for(lambda: not any(i["state"] in UNFINISHED for i in slurm.jobs().values()), 30, "jobs cancelled")


UNFINISHED = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "SUSPENDED"}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_sweep(cluster, args, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "emergence.train", *args]
    return subprocess.Popen(cmd, env=cluster.test_env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 240) -> tuple[int, str]:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, log.read_text()


def sweep(cluster, args, log: Path) -> tuple[int, str]:
    return finish(start_sweep(cluster, args, log), log)


def job_ids(sweep_dir: Path) -> list[str]:
    """The SLURM ids (``<array>_<task>``) of the sweep's jobs, from submitit's job folders."""
    return sorted(p.name for p in (sweep_dir / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))


def statuses(sweep_dir: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(sweep_dir)): json.loads(p.read_text())["status"]
            for p in sorted(sweep_dir.glob("*/seed=*/run.json"))}  # fmt: skip


def intervals(cluster, ids) -> list[tuple[datetime, datetime]]:
    jobs = cluster.jobs()
    return sorted((datetime.fromisoformat(jobs[j]["start"]), datetime.fromisoformat(jobs[j]["end"])) for j in ids)


def results(sweep_dir: Path) -> dict[Path, int]:
    """mtime of every result file and checkpoint of the sweep's runs (hydra rewrites its own .hydra/ and train.log)"""
    names = ("run.json", "metrics.jsonl", "checkpoint.pt")
    return {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/seed=*/*") if p.name in names}


def job_log(sweep_dir: Path, job_id: str) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((sweep_dir / ".submitit" / job_id).glob("*_log.*")))


def test_sweep_completes_and_rerun_trains_nothing(cluster, tmp_path):
    args = [*LAUNCH, *TINY, "init=kaiming,emergence", "seed=0,1", "name=sweep"]
    sweep_dir = tmp_path / "runs" / "sweep"
    rc, out = sweep(cluster, args, tmp_path / "first.log")
    assert rc == 0, out[-3000:]
    assert list(statuses(sweep_dir).values()) == ["completed"] * 4, statuses(sweep_dir)
    first = job_ids(sweep_dir)
    assert len(first) == 4 and len({j.split("_")[0] for j in first}) == 1  # one job array of four tasks
    spans = intervals(cluster, first)  # the node runs two jobs at once (what array_parallelism=1 must prevent)
    assert any(a[1] > b[0] for a, b in zip(spans, spans[1:])), spans
    assert "Bypassing sacct error" not in out and out.count("job states are read from squeue") == 1
    mtimes = results(sweep_dir)

    rc, out = sweep(cluster, args, tmp_path / "second.log")
    assert rc == 0, out[-3000:]
    second = sorted(set(job_ids(sweep_dir)) - set(first))
    assert len(second) == 4
    assert all("skipping" in job_log(sweep_dir, j) for j in second)  # no-op jobs
    assert results(sweep_dir) == mtimes  # nothing retrained: results untouched, no checkpoint written
