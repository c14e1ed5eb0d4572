"""A throwaway single-node SLURM cluster for the test session (``slurm`` fixture), started by scripts/slurm_local.sh.

Its config, munge key and socket, state, spool, logs and pid files live in one temporary directory; ``SLURM_CONF``
points the client commands at it (``Cluster.env``), so a cluster the machine already has is never touched. The
daemons recorded in ``run/*.pid`` are stopped at the end of the session. Without Debian's slurmctld, slurmd,
slurm-client and munge, or without root (slurmd starts jobs as their user), the tests that use it are skipped with the
reason; ``.ci/run`` installs the packages, so CI runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
EXECUTABLES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
PACKAGES = "slurmctld slurmd slurm-client munge"


class Cluster:
    def __init__(self, directory: Path):
        self.dir = directory
        self.conf = directory / "slurm.conf"

    def env(self, base: dict | None = None) -> dict:
        """``base`` (default os.environ) talking to this cluster only: no SLURM_/SBATCH_ variables of an enclosing
        job or another cluster leak in."""
        env = {k: v for k, v in (base or os.environ).items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin"
        return env

    def cmd(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(args, env=self.env(), capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def jobs(self) -> dict[str, dict]:
        """Every job the controller still knows (MinJobAge 10 min): id -> state, reason, start, end, restarts."""
        out = self.cmd("squeue", "--array", "--states=all", "--noheader", "--format=%i|%T|%r|%S|%e")
        jobs = {}
        for line in out.splitlines():
            job_id, state, reason, start, end = line.strip().split("|")
            jobs[job_id] = {"state": state, "reason": reason, "start": start, "end": end}
        return jobs

    def show(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (Restarts, TimeLimit, ArrayTaskThrottle, ...)."""
        fields = {}
        for token in self.cmd("scontrol", "show", "job", job_id).split():
            key, _, value = token.partition("=")
            fields.setdefault(key, value)
        return fields

    def logs(self, lines: int = 30) -> str:
        out = []
        for log in sorted((self.dir / "log").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log}\n" + "\n".join(tail))
        return "\n".join(out)

    def pids(self) -> list[int]:
        return [int(p.read_text()) for p in sorted((self.dir / "run").glob("*.pid")) if p.read_text().strip()]


def missing_reason() -> str | None:
    path = os.environ.get("PATH", "") + ":/usr/sbin"
    missing = [exe for exe in EXECUTABLES if shutil.which(exe, path=path) is None]
    if missing:
        return f"SLURM not installed ({', '.join(missing)} missing): apt-get install {PACKAGES} (.ci/run does)"
    if os.geteuid() != 0:
        return "the throwaway SLURM cluster needs root (slurmd starts each job as its user); run the tests as root"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def slurm():
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    # a short path: the munge socket's must fit in 108 bytes, whatever TMPDIR is
    directory = Path(tempfile.mkdtemp(prefix="emergence-slurm-", dir="/tmp" if os.path.isdir("/tmp") else None))
    cluster = Cluster(directory)
    start = subprocess.run(["bash", str(SCRIPT), "start", str(directory)], capture_output=True, text=True, timeout=120)
    if start.returncode != 0:  # the script has stopped what it started
        logs = cluster.logs()
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"the SLURM cluster did not start: {start.stderr}\n{logs}")
    try:
        yield cluster
    finally:
        pids = cluster.pids()
        stop = subprocess.run(["bash", str(SCRIPT), "stop", str(directory)], capture_output=True, text=True)
        deadline = time.time() + 15
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        survivors = [p for p in pids if _alive(p)]
        shutil.rmtree(directory, ignore_errors=True)
        assert stop.returncode == 0 and not survivors, f"cluster did not stop: {stop.stderr} (alive: {survivors})"
