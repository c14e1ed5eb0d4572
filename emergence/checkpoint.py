"""Checkpoints that survive kills and preemption, one process per run dir, and the resume/skip/refuse decision.

``save_atomic`` writes to a temporary file in the run dir, flushes and fsyncs it, then renames it over
``checkpoint.pt``: a kill at any moment leaves either the old or the new checkpoint, never half of one (a failed
write removes the temporary file). ``load`` reads with ``weights_only=True`` and turns any corruption into a
``CheckpointError`` that says what to do.

A checkpoint also holds the bytes of ``metrics.jsonl`` up to that point (the file is fsynced first), so a resume
restores exactly the records the checkpoint knows about, even when the file was cut short or deleted
(``restore_metrics``).

``lock_run_dir`` takes an exclusive ``flock`` on ``<run dir>/run.lock`` for the life of the run: a second process
started on the same run dir stops at once (``RunDirBusy``, exit 2) and touches nothing. The OS drops the lock when the
process dies, so a SIGKILLed run never leaves a stale lock.

``decide`` reads ``run.json`` and the checkpoint and says what a rerun does: start, resume, skip a finished run, or
refuse (``ForeignRun``: another configuration, another checkpoint, other data) without changing anything.

``Preemption`` catches SIGTERM, SIGUSR1 and SIGUSR2 (SLURM preemption and time limits, submitit's requeue signal):
the handler only sets a flag; the loop checkpoints at the next step boundary, calls a previously installed handler
(submitit's requeue) if there was one, and stops with status ``preempted`` so that a rerun resumes exactly.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import torch

from emergence.config import ConfigError
from emergence.runinfo import read_run_json

log = logging.getLogger("emergence")
SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR1", None), getattr(signal, "SIGUSR2", None)) if s)
FINISHED = ("completed", "diverged")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says what to do."""


class ForeignRun(ConfigError):
    """The run dir holds a run of another configuration or other data; nothing was changed."""


class RunDirBusy(RuntimeError):
    """Another process holds the run dir."""


class DiskFull(OSError):
    """No space left on the device holding the run dir."""

    def __init__(self, run_dir: Path):
        self.message = (
            f"no space left on the device holding {run_dir}; nothing written before this point was lost; free space "
            "and rerun the same command to resume"
        )
        super().__init__(errno.ENOSPC, self.message)

    def __str__(self) -> str:
        return self.message


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (torch reports a failed write as a RuntimeError that names the cause)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, RuntimeError) and "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class Preempted(Exception):
    """Raised after the checkpoint was written in response to a signal."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signal.Signals(signum).name} after writing a checkpoint")
        self.signum = signum


def save_atomic(obj: dict, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous checkpoint stays; no half-written file is left behind
        raise


def load(path: Path) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, foreign file: all unusable the same way
        raise CheckpointError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}). Nothing was changed. Move it away to "
            "restart this run from its beginning (its metrics.jsonl is kept as an attempt), or rerun with force=true."
        ) from exc


@contextmanager
def lock_run_dir(run_dir: Path):
    """Hold an exclusive lock on ``run_dir`` (see the module docstring); raises RunDirBusy if another process has it."""
    path = Path(run_dir) / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunDirBusy(
                f"run dir {run_dir} is in use by pid {pid}; nothing was changed. Wait for it to finish (a rerun then "
                "skips or resumes it), or stop that process."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def decide(
    run_dir: Path, fingerprint: str, force: bool, legacy: tuple[str, ...] = ()
) -> tuple[dict | None, dict | None]:
    """(previous run.json, checkpoint to resume from): both None for a fresh start. Refuses with ForeignRun or
    CheckpointError, changing nothing, when the run dir holds another configuration or an unusable checkpoint.
    ``legacy``: this configuration's fingerprints as older code wrote them (config.legacy_fingerprints), accepted
    too."""
    if force:
        return None, None
    accepted = (fingerprint, *legacy)
    previous = read_run_json(run_dir)
    if previous is not None and previous.get("fingerprint") not in (None, *accepted):
        raise ForeignRun(
            f"{run_dir} holds a run of a different configuration (fingerprint {previous.get('fingerprint')} != "
            f"{fingerprint}); nothing was changed. Use another paths.runs_dir or experiment name, or force=true to "
            "overwrite it."
        )
    if previous is not None and previous.get("status") in FINISHED:
        return previous, None
    resume = load(Path(run_dir) / "checkpoint.pt")
    if resume is not None and resume.get("fingerprint") not in accepted:
        raise ForeignRun(
            f"{run_dir}/checkpoint.pt was written by a different configuration (fingerprint "
            f"{resume.get('fingerprint')} != {fingerprint}); nothing was changed. Move it away to restart this run, "
            "or rerun with force=true."
        )
    return previous, resume


def check_data(run_dir: Path, data_id: str, previous: dict | None, resume: dict | None) -> None:
    """Refuse (ForeignRun) a run dir whose run or checkpoint was made on other data."""
    for source, record in (("run.json", previous), ("checkpoint.pt", resume)):
        recorded = (record or {}).get("data_identity")
        if recorded is not None and recorded != data_id:
            raise ForeignRun(
                f"the data changed since {run_dir} was run (its {source} records data {recorded}, the data read now "
                f"is {data_id}); nothing was changed. Restore the data it was made on, or rerun with force=true (or "
                "another paths.runs_dir) to train on the new data."
            )


def save(path: Path, loop_state: dict, *, model, optimizer, schedule, logger, layer_tracker, **identity) -> None:
    """Write the run's checkpoint: loop state, model, optimizer, schedule, layer tracker, the metrics records so far
    (flushed and fsynced first) and ``identity`` (fingerprint, data identity, RNG states, init stats, W&B id)."""
    nbytes = logger.offset()
    save_atomic({
        **identity, "loop": loop_state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(), "metrics_bytes": nbytes, "metrics": metrics_snapshot(logger.path, nbytes),
        "layer_tracker": layer_tracker.state() if layer_tracker is not None else None,
    }, path)  # fmt: skip


def restore(resume: dict, *, model, optimizer, schedule, layer_tracker) -> None:
    """Load a checkpoint's states into the freshly built model, optimizer, schedule and layer tracker."""
    model.load_state_dict(resume["model"])
    optimizer.load_state_dict(resume["optimizer"])
    schedule.load_state_dict(resume["schedule"])
    if layer_tracker is not None:
        layer_tracker.load_state(resume["layer_tracker"])


def metrics_snapshot(path: Path, nbytes: int) -> bytes:
    """The first ``nbytes`` of the (flushed and fsynced) metrics file, stored in the checkpoint."""
    with open(path, "rb") as f:
        return f.read(nbytes)


def restore_metrics(path: Path, resume: dict) -> None:
    """Make ``metrics.jsonl`` hold exactly the records the checkpoint knows about, before a resume appends to it.

    Records written after the checkpoint are dropped (the resumed run writes them again). A file that is shorter than
    the checkpoint's copy, missing, or different from it is set aside as ``metrics.jsonl.damaged`` and rewritten from
    the checkpoint; it is never padded.
    """
    path = Path(path)
    stored = resume.get("metrics")
    if stored is None:  # a checkpoint from before the records were stored: only the offset is known
        size = path.stat().st_size if path.exists() else -1
        if size < resume["metrics_bytes"]:
            raise CheckpointError(
                f"{path} is {'missing' if size < 0 else f'shorter ({size} bytes)'} than the {resume['metrics_bytes']} "
                "bytes its checkpoint expects, and the checkpoint holds no copy of the records; nothing was changed. "
                "Move checkpoint.pt away to restart this run, or rerun with force=true."
            )
        with open(path, "r+b") as f:
            f.truncate(resume["metrics_bytes"])
        return
    current = path.read_bytes() if path.exists() else None
    if current is not None and current[: len(stored)] == stored:
        if len(current) > len(stored):
            with open(path, "r+b") as f:
                f.truncate(len(stored))
        return
    if current:
        damaged = path.with_name(path.name + ".damaged")
        path.replace(damaged)
        log.warning("%s differs from the records its checkpoint holds: kept as %s", path, damaged.name)
    log.warning("restored %s from the checkpoint (%d bytes of records)", path, len(stored))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(stored)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Preemption:
    """Context manager: records the first of SIGNALS received; restores the old handlers on exit."""

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> Preemption:
        try:
            for sig in SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (e.g. a launcher thread): no signal handling
            self.previous = {}
        return self

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def forward(self) -> None:
        """Call the handler that was installed before ours (submitit requeues the job there)."""
        prev = self.previous.get(self.signum)
        if callable(prev):
            try:
                prev(self.signum, None)
            except SystemExit:
                pass  # submitit exits after requeueing the job; the run stops through Preempted and records it

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
