"""Checkpoints that survive kills and preemption: atomic writes, exact resume, signal handling.

``save_atomic`` writes to a temporary file in the run dir, flushes and fsyncs it, then renames it over
``checkpoint.pt``: a kill at any moment leaves either the old or the new checkpoint, never half of one. ``load`` reads
with ``weights_only=True`` and turns any corruption into a ``CheckpointError`` that says what to do.

``Preemption`` catches SIGTERM, SIGUSR1 and SIGUSR2 (SLURM preemption and time limits, submitit's requeue signal):
the handler only sets a flag; the loop checkpoints at the next step boundary, calls a previously installed handler
(submitit's requeue) if there was one, and stops with status ``preempted`` so that a rerun resumes exactly.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR1", None), getattr(signal, "SIGUSR2", None)) if s)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says what to do."""


class Preempted(Exception):
    """Raised after the checkpoint was written in response to a signal."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signal.Signals(signum).name} after writing a checkpoint")
        self.signum = signum


def save_atomic(obj: dict, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
            prev(self.signum, None)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
