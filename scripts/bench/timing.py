"""The one way the benchmarks time things and report them, so that results compare from run to run.

- ``interleave(fns, repeats)``: every repeat calls each variant once, in an order rotated per repeat, so that the
  noise of a shared machine (other processes, frequency changes) hits all variants alike; a variant returns its own
  figure (seconds, or a rate) or ``None`` to be timed here as one call.
- ``Stat``: median, min, max and the spread (max - min) / median of the repeats; ``paired(a, b)``: the per-repeat
  ratios of two variants, whose median is the ratio reported (robust to slow phases of a shared machine).
- ``clocks(fn)``: wall and process-CPU seconds of one call (the CPU figure is the robust one on a shared CPU).
- ``machine()``: host, CPU model, cores, torch threads, torch version, device, git commit — printed above every table
  and stored in the JSON.
- ``Report``: a markdown table with a header and notes; ``--json PATH`` writes the same rows and the machine as JSON.
- ``common_args(parser)``: the options every benchmark takes (``--smoke``, ``--repeats``, ``--threads``, ``--json``).

Benchmarks run from the repository root as modules: ``python -m scripts.bench.runner`` (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def sync(device: torch.device | str | None) -> None:
    """Wait for queued device work, so that a clock read means what it says (a no-op on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def clock(fn: Callable[[], object], device: torch.device | str | None = None) -> float:
    """Wall seconds of one call of ``fn``, the device synchronized before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def clocks(fn: Callable[[], object], device: torch.device | str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call of ``fn``. On a CPU shared with other jobs the CPU
    time barely moves when the machine is busy (at one torch thread it is the compute the call needed), so it is the
    figure to compare there; the wall time is the one to trust on a quiet machine or a GPU."""
    sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - w0, time.process_time() - c0


@dataclass
class Stat:
    """Summary of one variant's repeats."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median: 0.05 means the repeats lie within 5 % of the median."""
        return (max(self.values) - min(self.values)) / self.median if self.median else 0.0

    def as_dict(self) -> dict:
        return {"median": self.median, "min": min(self.values), "max": max(self.values), "spread": self.spread,
                "n": len(self.values), "values": self.values}  # fmt: skip


def interleave(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 0, device=None) -> dict:
    """Call every variant ``repeats`` times, interleaved (order rotated each repeat) after ``warmup`` untimed rounds.

    A variant returns its own figure (a number), a tuple of figures, or anything else (None) to be timed here as one
    call; the result maps each variant to a ``Stat`` (or a tuple of ``Stat``, one per figure)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    values: dict[str, list] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sync(device)
            t0 = time.perf_counter()
            figure = fns[name]()
            sync(device)
            timed = not isinstance(figure, (int, float, tuple))  # a variant that returns no figure is timed here
            values[name].append(time.perf_counter() - t0 if timed else figure)
    return {
        name: tuple(Stat([float(x[i]) for x in v]) for i in range(len(v[0]))) if isinstance(v[0], tuple)
        else Stat([float(x) for x in v])
        for name, v in values.items()
    }  # fmt: skip


def paired(a: Stat, b: Stat) -> Stat:
    """Per-repeat ratios a_i / b_i of two variants of one ``interleave`` (measured next to each other in time, so a
    slow phase of the machine cancels); their median is the ratio to report on a noisy machine."""
    return Stat([x / y for x, y in zip(a.values, b.values)])


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device | str | None = None) -> dict:
    """Where a figure was measured: enough to tell two results.json apart."""
    info = {
        "host": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "commit": git_commit(),
        "device": str(device or "cpu"),
    }  # fmt: skip
    if device is not None and torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_line(info: dict) -> str:
    gpu = f", {info['gpu']}" if "gpu" in info else ""
    return (
        f"{info['cpu']} ({info['cores']} cores), {info['torch_threads']} torch thread(s), torch {info['torch']}, "
        f"device {info['device']}{gpu}, commit {info['commit']}"
    )


def common_args(parser: argparse.ArgumentParser, repeats: int = 5, threads: int = 1) -> argparse.ArgumentParser:
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one repeat: checks that it runs")
    parser.add_argument("--repeats", type=int, default=repeats, help="interleaved repeats (median reported)")
    parser.add_argument("--threads", type=int, default=threads, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and the machine to this file")
    return parser


def setup(args: argparse.Namespace) -> None:
    """Apply the common options: thread count; ``--smoke`` means one repeat."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.repeats = 1


class Report:
    """A markdown table (printed) and the same rows as JSON (``--json``)."""

    def __init__(self, title: str, columns: list[str], device=None, setting: str = "") -> None:
        self.title, self.columns, self.setting = title, columns, setting
        self.rows: list[list] = []
        self.notes: list[str] = []
        self.extra: dict = {}
        self.machine = machine(device)

    def add(self, *row) -> None:
        assert len(row) == len(self.columns), (row, self.columns)
        self.rows.append(list(row))

    def note(self, text: str) -> None:
        self.notes.append(text)

    @staticmethod
    def _cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1 else f"{v:,.1f}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", f"Machine: {machine_line(self.machine)}."]
        if self.setting:
            lines.append(f"Setting: {self.setting}.")
        lines += ["", "| " + " | ".join(self.columns) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(self._cell(v) for v in row) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def emit(self, json_path: Path | None) -> None:
        print(self.markdown(), flush=True)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            record = {"title": self.title, "setting": self.setting, "machine": self.machine, "columns": self.columns,
                      "rows": self.rows, "notes": self.notes, **self.extra}  # fmt: skip
            json_path.write_text(json.dumps(record, indent=1, default=str) + "\n")
