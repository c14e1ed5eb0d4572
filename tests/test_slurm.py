"""Sweeps through the real CLI and ``hydra/launcher=slurm`` on a real single-node SLURM (tests/slurm_cluster.py).

Each test is one sweep as a user would type it, with CPU resources: a sweep completes and its rerun trains nothing;
``scontrol requeue`` preempts a run, which checkpoints, exits ``preempted`` and, restarted by SLURM, ends with the
metrics of an uninterrupted run; a time limit shorter than the training signals the run ``signal_delay_s`` early and
submitit requeues it; a failed job is reported while the others complete; ``array_parallelism=1`` runs one job at a
time. SLURM holds a requeued job for two minutes before restarting it; the tests release it at once
(``scontrol update starttime=now``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from emergence import checkpoint
from tests.conftest import ROOT
from tests.slurm_cluster import slurm  # noqa: F401  (the session's cluster)

LAUNCH = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=cpu", "hydra.launcher.gpus_per_node=0",
          "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=5"]  # fmt: skip
TINY = ["arch=mlp", "data=digits", "arch.width=32", "arch.depth=2", "logger=none", "trainer.epochs=1",
        "trainer.cpu_threads=1", "trainer.progress=false"]  # fmt: skip
# long enough (3 epochs x 37 steps of a 1.6M-parameter MLP) to be caught mid-epoch, with a checkpoint every 7 steps
LONG = ["arch=mlp", "init=kaiming", "data=digits", "arch.width=512", "logger=none", "trainer.epochs=3",
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
    """SLURM ids of the sweep's jobs (``<array>_<task>``, or ``<job>`` for a sweep of one), from submitit's folders."""
    names = [p.name for p in (sweep_dir / ".submitit").iterdir() if p.is_dir()]
    tasks = [n for n in names if re.fullmatch(r"\d+_\d+", n)]
    return sorted(tasks or [n for n in names if n.isdigit()])


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


def fake_commands(tmp_path: Path, monkeypatch, squeue: str, sacct_rc: int = 1) -> Path:
    """``sacct`` exiting ``sacct_rc`` and ``squeue`` running the shell snippet ``squeue`` (calls logged), on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(f"#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit {sacct_rc}\n")
    (bin_dir / "squeue").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/squeue.calls\n{squeue}\n')
    for exe in bin_dir.iterdir():
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path / "squeue.calls"


def test_watcher_reads_squeue_without_accounting(tmp_path, monkeypatch, caplog):
    from emergence.slurm import QueueWatcher

    out = "printf '7_0|COMPLETED\\n7_1|FAILED\\n7_2|RUNNING\\n8|REQUEUED\\n'"
    calls = fake_commands(tmp_path, monkeypatch, out)
    watcher = QueueWatcher()
    for job in ("7_0", "7_1", "7_2", "7_3", "8"):
        watcher.register_job(job)
    with caplog.at_level("INFO", logger="emergence.slurm"):
        watcher.update()
        watcher.update()
    assert caplog.text.count("keeps no accounting") == 1  # said once, sacct not retried
    assert calls.read_text().splitlines()[0].split()[-1] == "7,8"  # one squeue call for the whole sweep
    states = {j: watcher.get_state(j, mode="cache") for j in ("7_0", "7_1", "7_2", "7_3", "8")}
    assert states == {"7_0": "COMPLETED", "7_1": "FAILED", "7_2": "RUNNING", "7_3": "ENDED", "8": "REQUEUED"}
    done = {j: watcher.is_done(j, mode="cache") for j in states}
    assert done == {"7_0": True, "7_1": True, "7_2": False, "7_3": True, "8": False}  # 7_3: no longer listed


def test_watcher_keeps_states_when_squeue_fails_and_ends_unknown_jobs(tmp_path, monkeypatch):
    from emergence.slurm import QueueWatcher

    fake_commands(tmp_path, monkeypatch, "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1")
    watcher = QueueWatcher()
    watcher.register_job("5_0")
    watcher.update()
    assert not watcher.is_done("5_0", mode="cache")  # controller unreachable: nothing is concluded
    (tmp_path / "bin" / "squeue").write_text("#!/bin/sh\necho 'Invalid job id specified' >&2\nexit 1\n")
    watcher.update()
    assert watcher.get_state("5_0", mode="cache") == "ENDED" and watcher.is_done("5_0", mode="cache")


def test_watcher_uses_sacct_where_accounting_works(tmp_path, monkeypatch):
    from emergence.slurm import QueueWatcher

    calls = fake_commands(tmp_path, monkeypatch, "exit 1", sacct_rc=0)
    watcher = QueueWatcher()
    watcher.register_job("3_0")
    watcher.update()
    assert watcher.source == "sacct" and not calls.exists()


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


def training_run(sweep_dir: Path, min_step: int, timeout: float = 180) -> Path:
    """The run dir once its checkpoint has passed ``min_step`` (the job is training)."""

    def found():
        for ckpt in sweep_dir.glob("*/seed=*/checkpoint.pt"):
            try:
                if checkpoint.load(ckpt)["loop"]["step"] >= min_step:
                    return ckpt.parent
            except (checkpoint.CheckpointError, KeyError, TypeError):
                pass  # being replaced
        return None

    return wait_for(found, timeout, f"a checkpoint past step {min_step}", interval=0.05)


def requeued(cluster, job_id: str) -> bool:
    """SLURM put the job back in the queue and holds it for its begin-time delay."""
    info = cluster.jobs().get(job_id, {})
    return info.get("state") == "PENDING" and info.get("reason") == "BeginTime"


def metric_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]


def test_requeue_preempts_checkpoints_and_resumes_exactly(cluster, tmp_path, subprocess_env):
    args = [*LAUNCH, *LONG, "name=preempt"]
    sweep_dir = tmp_path / "runs" / "preempt"
    reference = subprocess.Popen(  # the same run, uninterrupted, without SLURM
        [sys.executable, "-m", "emergence.train", *LONG, "name=preempt", f"paths.runs_dir={tmp_path / 'reference'}"],
        env=subprocess_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proc = start_sweep(cluster, args, tmp_path / "sweep.log")
    run_dir = training_run(sweep_dir, min_step=7)
    (job_id,) = job_ids(sweep_dir)
    cluster.cmd("scontrol", "requeue", job_id)  # what a preemption with PreemptMode=REQUEUE does
    wait_for(lambda: requeued(cluster, job_id), 60, f"job {job_id} requeued")
    stopped = json.loads((run_dir / "run.json").read_text())
    assert stopped["status"] == "preempted", stopped.get("error")
    step = checkpoint.load(run_dir / "checkpoint.pt")["loop"]
    assert step["batch"] > 0  # a mid-epoch checkpoint (end-of-epoch ones have batch 0)
    cluster.cmd("scontrol", "update", f"jobid={job_id}", "starttime=now")  # release it now, not in two minutes

    rc, out = finish(proc, tmp_path / "sweep.log")
    assert rc == 0, out[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert cluster.show(job_id)["Restarts"] == "1"
    assert f"resuming {run_dir} at step {step['step']}" in (run_dir / "train.log").read_text()
    assert reference.wait(timeout=240) == 0, reference.stderr.read()[-2000:]
    (ref_dir,) = [p.parent for p in (tmp_path / "reference").rglob("metrics.jsonl")]
    assert ref_dir.relative_to(tmp_path / "reference") == run_dir.relative_to(tmp_path / "runs")
    assert metric_records(run_dir) == metric_records(ref_dir)


def signal_pending(pid: int, sig: int) -> bool:
    """``sig`` waits to be delivered to the (stopped) process ``pid``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask >> (sig - 1) & 1 for mask in masks)


def test_time_limit_signals_checkpoints_and_submitit_requeues(cluster, tmp_path):
    # submitit asks SLURM for USR2 signal_delay_s (59 s) before the time limit; its handler requeues the job
    args = [*LAUNCH, *LONG, "name=timeout", "hydra.launcher.signal_delay_s=59", "hydra.launcher.max_num_timeout=2"]
    sweep_dir = tmp_path / "runs" / "timeout"
    proc = start_sweep(cluster, args, tmp_path / "sweep.log")
    run_dir = training_run(sweep_dir, min_step=7)
    (job_id,) = job_ids(sweep_dir)
    pid = json.loads((run_dir / "run.json").read_text())["pid"]
    # SLURM checks time limits every 30 s, so the signal comes up to 30 s after it is due: the run is held (SIGSTOP)
    # until SLURM's USR2 is pending, so that a short training is still running when it arrives
    os.kill(pid, signal.SIGSTOP)
    try:
        cluster.cmd("scontrol", "update", f"jobid={job_id}", "timelimit=1")  # shorter than the training: due now
        wait_for(lambda: signal_pending(pid, signal.SIGUSR2) or requeued(cluster, job_id), 45, "SLURM's USR2")
    finally:
        with contextlib.suppress(ProcessLookupError):  # SLURM sends SIGCONT with the signal; the run may be done
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: requeued(cluster, job_id), 60, f"job {job_id} requeued by submitit")
    step = checkpoint.load(run_dir / "checkpoint.pt")["loop"]["step"]
    log = job_log(sweep_dir, job_id)
    assert "Caught signal SIGUSR2" in log and "this job is timed-out" in log, log[-3000:]
    stopped = json.loads((run_dir / "run.json").read_text())
    # the next attempt gets the time it needs (on a cluster each attempt runs to the limit, up to max_num_timeout)
    cluster.cmd("scontrol", "update", f"jobid={job_id}", "timelimit=5", "starttime=now")

    rc, out = finish(proc, tmp_path / "sweep.log")
    assert rc == 0, out[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert cluster.show(job_id)["Restarts"] == "1"
    assert f"resuming {run_dir} at step {step}" in (run_dir / "train.log").read_text()
    # the stopped attempt says why it stopped (submitit's requeue handler exits; Preemption.forward() must not let
    # that SystemExit reach run(), which would record status "failed" with error "SystemExit: -1")
    assert stopped["status"] == "preempted", stopped.get("error")


def test_one_job_at_a_time_and_a_failed_job_does_not_stop_the_others(cluster, tmp_path):
    args = [*LAUNCH, *TINY, "init=kaiming", "optim.lr=0.1,-1,0.01", "name=serial", "hydra.launcher.array_parallelism=1"]
    sweep_dir = tmp_path / "runs" / "serial"
    rc, out = sweep(cluster, args, tmp_path / "sweep.log")
    assert rc == 1, out[-3000:]
    # the bad value is reported with the job's own error, the jobs before and after it complete
    assert "failed #1 (" in out and "FAILED" in out and "optim.lr=-1 is invalid" in out, out[-3000:]
    assert "sweep done: 2 of 3 jobs succeeded" in out
    done = statuses(sweep_dir)
    assert len(done) == 2 and all("optim.lr=-1" not in k for k in done) and set(done.values()) == {"completed"}
    ids = job_ids(sweep_dir)
    assert len(ids) == 3 and cluster.show(ids[0])["ArrayTaskThrottle"] == "1"
    spans = intervals(cluster, ids)  # the node has two job slots, yet each job starts after the previous ended
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
