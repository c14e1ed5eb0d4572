"""Reading run dirs: every ``run.json`` under a runs folder, in one place for the scripts and the report.

A run dir is any folder holding a ``run.json`` (written by the runner, emergence/runinfo.py); the folders above it
(experiment, override dir name, seed) are not interpreted here. ``run_records`` walks them in sorted path order, so
every reader lists runs in the same order, and reports a ``run.json`` that cannot be read or parsed (a run killed while
writing it, a disk error) as ``record=None`` with the error, so each reader decides what a corrupt run counts as:
``scripts/aggregate.py`` and ``scripts/select_lr.py`` list it as ``corrupt``, the report as a failed run,
``scripts/plot.py`` skips it. ``split_overrides`` cuts a run's ``variant`` label back into its overrides.

    for run_dir, record, error in run_records("runs"):
        ...
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def run_records(runs_dir: str | Path) -> Iterator[tuple[Path, dict | None, Exception | None]]:
    """``(run dir, parsed run.json, None)`` for each run dir under ``runs_dir``, ``(run dir, None, error)`` when its
    run.json is unreadable (OSError) or not valid UTF-8 JSON (ValueError)."""
    for path in sorted(Path(runs_dir).rglob("run.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            yield path.parent, None, exc
        else:
            yield path.parent, record, None


def split_overrides(text: str) -> list[str]:
    """``a=1,b={x:1,y:2}`` -> ['a=1', 'b={x:1,y:2}']: split a run's ``variant`` label (runinfo joins its overrides
    with commas) at the commas outside braces, brackets and parentheses."""
    parts, depth, buf = [], 0, ""
    for ch in text:
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    if buf:
        parts.append(buf)
    return [p for p in (p.strip() for p in parts) if p]
