"""What ``hydra/launcher=slurm`` adds to hydra-submitit-launcher's SLURM launcher: two changes a sweep needs.

The launcher class is ``hydra_plugins/emergence_launcher/slurm.py`` (hydra finds plugins only in that package); its
``launch`` is ``launch`` here.

1. Job states come from ``squeue`` when the cluster keeps no accounting. submitit polls ``sacct``; where accounting
   is disabled (a single-node or laptop cluster, ``scripts/slurm_local.sh``) every poll printed a warning and a job
   that died without a result (killed, or ``sys.exit(2)`` on a bad config) was never seen to end, so the sweep waited
   forever. ``QueueWatcher`` tries ``sacct`` once; if it fails it says so in one line and reads
   ``squeue --states=all`` from then on (a job squeue no longer lists has ended).
2. One failed job does not end the sweep's wait: every job is waited for, each failure is logged with its overrides,
   SLURM state, the job's own error line and its log's path, and only then is the first failure raised (exit 1).

Everything else (array submission, ``array_parallelism``, requeue on preemption and time limit through
``checkpoint``) is the upstream launcher's. docs/cluster.md describes the settings.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

log = logging.getLogger(__name__)

# states in which a job may still produce its result (squeue's names; submitit's list misses the transient ones)
UNFINISHED = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "COMPLETING", "CONFIGURING", "RESIZING", "SIGNALING",
              "STAGE_OUT", "SUSPENDED", "STOPPED", "PREEMPTED", "UNKNOWN", "READY"}  # fmt: skip


SQUEUE_EVERY_S = 10  # at most this long between two squeue calls (one cheap call for the whole sweep)
RESULT_GRACE_S = 5  # how long a job that ended without a result file is given for it to appear (slow NFS)


class SlurmJobFailed(RuntimeError):
    """A sweep job that ended without a result."""


class QueueWatcher(SlurmInfoWatcher):
    """submitit's job-state poller: ``sacct`` where it works, else ``squeue`` (decided at the first poll)."""

    def __init__(self, delay_s: int = 60):
        super().__init__(delay_s)
        self.source: str | None = None
        self._ending: set[str] = set()  # jobs seen in an end state once; a second poll confirms it

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        if self.get_state(job_id, mode=mode).split()[0].upper() in UNFINISHED:
            return False
        return self.source != "squeue" or job_id in self._finished

    def update(self) -> None:
        if self.source is None:
            self.source = "sacct" if _succeeds(["sacct", "--noheader", "-X", "-j", "1", "-o", "JobID"]) else "squeue"
            if self.source == "squeue":
                log.info("this cluster keeps no accounting (sacct fails): job states are read from squeue")
                self._delay_s = min(self._delay_s, SQUEUE_EVERY_S)
        if self.source == "sacct":
            return super().update()
        pending = self._registered - self._finished
        if not pending:
            return
        self._num_calls += 1
        ids = ",".join(sorted({j.split("_")[0] for j in pending}))
        cmd = ["squeue", "--array", "--states=all", "--noheader", "--format=%i|%T", "--jobs", ids]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        self._last_status_check = time.time()
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # controller busy: keep the last states
            log.debug("squeue failed (%s); states unchanged", proc.stderr.strip())
            return
        listed = dict(line.strip().split("|", 1) for line in proc.stdout.splitlines() if "|" in line)
        for job_id in pending:  # a job squeue no longer lists has ended (MinJobAge passed)
            state = listed.get(job_id, "ENDED")
            self._info_dict[job_id] = {"JobID": job_id, "State": state}
            if state.split()[0].upper() in UNFINISHED:
                self._ending.discard(job_id)
            elif job_id in self._ending:  # an end state in two polls in a row: the job has ended
                self._finished.add(job_id)
            else:  # a job requeued while running (time limit, preemption) can show FAILED for a moment
                self._ending.add(job_id)


def _succeeds(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    """Submit the sweep as one job array, wait for every job, report each failure; hydra raises the first."""
    import submitit

    if not isinstance(SlurmJob.watcher, QueueWatcher):
        SlurmJob.watcher = QueueWatcher()
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    numbered = list(enumerate(job_overrides, start=initial_job_idx))
    for idx, overrides in numbered:
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
    state = Singleton.get_state()
    jobs = executor.map_array(
        launcher, *zip(*[(list(o), "hydra.sweep.dir", i, f"job_id_for_{i}", state) for i, o in numbered])
    )
    log.info("submitted job array %s (%d jobs); waiting for them", jobs[0].job_id.split("_")[0], len(jobs))
    while not all(job.done() for job in jobs):
        time.sleep(1)
    for job in jobs:
        job._results_timeout_s = min(job._results_timeout_s, RESULT_GRACE_S)  # submitit waits 15 s per failed job
    returns, failed = [], []
    for (idx, overrides), job in zip(numbered, jobs):
        label = f"#{idx} ({' '.join(filter_overrides(overrides))})"
        try:
            ret = job.results()[0]
        except Exception as exc:  # no result: killed, cancelled, or exited before hydra could catch an error
            log.debug("%s", exc)
            reason = f"SLURM job {job.job_id} ended {job.state} without a result; {_error_line(job)}"
            ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED,
                            _return_value=SlurmJobFailed(f"{label}: {reason}log: {job.paths.stderr}"))  # fmt: skip
        if ret.status == JobStatus.FAILED:  # no result, or hydra caught the run's exception inside the job
            error = ret._return_value
            failed.append(str(error) if isinstance(error, SlurmJobFailed) else f"{label}: {error!r}")
        returns.append(ret)
    for line in failed:
        log.error("failed %s", line)
    log.info("sweep done: %d of %d jobs succeeded", len(jobs) - len(failed), len(jobs))
    return returns


def _error_line(job) -> str:
    """The job's last logged error (hydra logs to stdout, Python and srun write to stderr), else its last line."""
    lines = []
    for path in (job.paths.stdout, job.paths.stderr):
        try:
            lines += [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            pass
    errors = [ln for ln in lines if ("ERROR" in ln or "Error" in ln) and not ln.startswith("srun:")]
    line = (errors or lines or [""])[-1]
    return f"{line[:300]}; " if line else ""
