"""Metric logging: ``metrics.jsonl`` in the run dir (always; the ground truth) plus optional Weights & Biases.

``RunLogger.log(metrics, step)`` appends one JSON record per call and flushes it, so a crash loses nothing already
logged. A W&B sink mirrors the same records; ``results/`` is always rebuilt from the local files, never from W&B.

W&B modes are explicit: ``online`` (falls back to ``offline`` with a warning when no API key is configured or the
server cannot be reached within ``logger.init_timeout_s``),
``offline`` (files under ``<run_dir>/wandb``; upload later with ``wandb sync <run_dir>/wandb/offline-run-*``) or
``disabled``. The run is finished in ``close()``, which the runner calls in a ``finally``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
WANDB_MODES = ("online", "offline", "disabled")


def _jsonable(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf; keep them visible as strings
    return v


class NullSink:
    """No remote logging (``logger=none``)."""

    def start(self, run_dir, name, group, tags, config, resume_id=None):
        return None

    def log(self, metrics, step):
        pass

    def close(self, exit_code=0):
        pass


class WandbSink:
    """Mirror of the metrics to W&B, grouped by experiment, named ``<arch>-<init>-s<seed>``."""

    def __init__(
        self, project: str = "emergence", entity: str | None = None, mode: str = "offline", init_timeout_s: float = 30
    ):
        if mode not in WANDB_MODES:
            raise ValueError(f"logger.mode must be one of {list(WANDB_MODES)}; got {mode!r}")
        self.project, self.entity, self.mode, self.run = project, entity, mode, None
        self.init_timeout_s = float(init_timeout_s)

    def start(self, run_dir, name, group, tags, config, resume_id=None):
        import wandb

        mode = self.mode
        if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()):
            log.warning("logger.mode=online but no W&B API key is configured: logging offline instead")
            mode = "offline"
        labels = dict(t.split(":", 1) for t in tags if ":" in t)  # the runner's tags are "<key>:<value>"
        kwargs = dict(
            project=self.project, entity=self.entity, dir=str(run_dir), name=name,
            group=group,  # the experiment: one sweep's runs share it
            job_type=labels.get("init"),  # W&B's grouping by job type gives the seed band per init
            tags=list(tags), config=wandb_config(config, group, labels), id=resume_id,
            resume="allow" if resume_id else None, reinit=True,
        )  # fmt: skip
        if mode == "online":  # the local files are the truth: an unreachable W&B never fails or stalls a run
            try:
                _probe(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai", self.init_timeout_s)
                settings = wandb.Settings(init_timeout=self.init_timeout_s)
                self.run = wandb.init(mode="online", settings=settings, **kwargs)
            except Exception as exc:
                log.warning("W&B is not reachable within logger.init_timeout_s=%g s (%s): logging offline instead "
                            "(upload later with `wandb sync %s/wandb/offline-run-*`)", self.init_timeout_s,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, run_dir)
                self.run, mode = None, "offline"
        if self.run is None:
            self.run = wandb.init(mode=mode, **kwargs)
        return getattr(self.run, "id", None)

    def log(self, metrics, step):
        if self.run is not None:
            self.run.log(metrics, step=step)

    def close(self, exit_code=0):
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def wandb_config(config: dict, experiment: str, labels: dict) -> dict:
    """The run's W&B config: flat keys to filter and group on (experiment, init, arch, dataset, alpha, inverse, seed)
    beside the resolved config, whose nested ``init`` and ``arch`` nodes move to ``init_cfg`` and ``arch_cfg``."""
    init_cfg, arch_cfg = config.get("init"), config.get("arch")
    init_node = init_cfg if isinstance(init_cfg, dict) else {}
    flat = {
        "experiment": experiment,
        "init": labels.get("init"),
        "arch": labels.get("arch"),
        "dataset": labels.get("data"),
        "alpha": init_node.get("alpha"),
        "inverse": init_node.get("inverse"),
        "seed": config.get("seed"),
    }
    rest = {k: v for k, v in config.items() if k not in ("init", "arch")}
    return {**rest, **flat, "init_cfg": init_cfg, "arch_cfg": arch_cfg}


def _probe(url: str, timeout: float) -> None:
    """Open (and close) a TCP connection to the W&B server; OSError if it cannot be reached within ``timeout``."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    socket.create_connection((parts.hostname, port), timeout=timeout).close()


def _netrc_has_wandb() -> bool:
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


class RunLogger:
    """Appends records to ``metrics.jsonl`` and mirrors them to a sink."""

    def __init__(self, run_dir: Path, sink=None, truncate_to: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.sink = sink or NullSink()
        try:
            if truncate_to is not None and self.path.exists():  # resume: drop records written after the checkpoint
                with open(self.path, "r+b") as f:
                    f.truncate(truncate_to)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  closed in close()
        except OSError as exc:
            raise OSError(
                f"cannot write the metrics file {self.path}: {exc}. Check that the run dir is writable "
                "and the disk has space (paths.runs_dir / EMERGENCE_RUNS moves it)."
            ) from exc

    def offset(self) -> int:
        """Bytes written so far, flushed and fsynced (a checkpoint stores them, so a resume restores exactly these)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def log(self, metrics: dict, step: int) -> None:
        record = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items()}}
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as exc:
            raise OSError(
                f"writing {self.path} failed: {exc}. The records before this one are intact; free space "
                "or fix permissions, then rerun the same command to resume from the last checkpoint."
            ) from exc
        self.sink.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step)

    def close(self, exit_code: int = 0) -> None:
        try:
            self._file.close()
        except OSError:  # a full disk: the failed record stays unwritten; the error was already raised by log()
            pass
        finally:
            self.sink.close(exit_code)


def read_metrics(path: Path) -> list[dict]:
    """Records of a ``metrics.jsonl``; a torn last line (killed writer) is ignored."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


class Progress:
    """A one-line progress bar on stderr, silent unless stderr is a terminal (or ``enabled=True``)."""

    def __init__(self, total_steps: int, enabled: bool | str = "auto", label: str = ""):
        self.enabled = sys.stderr.isatty() if enabled == "auto" else bool(enabled)
        self.total, self.label, self.t0, self.last = total_steps, label, time.perf_counter(), 0.0

    def update(self, step: int, epoch: int, **fields) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and step < self.total):
            return
        self.last = now
        frac = step / max(1, self.total)
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        extra = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        sys.stderr.write(f"\r{self.label} [{bar}] ep {epoch} step {step}/{self.total} {extra} {now - self.t0:.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
