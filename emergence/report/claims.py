"""The claims file (``conf/claims.yaml``) and the runs it is judged on.

``load_claims`` reads and checks the file: the pre-registered ``rule``, the ``metrics`` (where a number is read, its
unit, direction, equivalence margin δ, and the value a diverged run gets) and one entry per claim or control
comparison (treatment and control cells, claimed direction, the paper's number). ``load_runs`` reads every
``run.json`` under a runs dir (``metrics.jsonl`` lazily), ``select`` finds the runs of a cell, and ``pairs`` matches
treatment and control runs by seed and reads the metric of each pair (docs/experiments.md explains the rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

from emergence.log import read_metrics
from emergence.rundirs import run_records, split_overrides

VERDICT_CI = ("bootstrap", "t", "hull")
FINISHED = ("completed", "diverged")  # a diverged run is a result (a loss), a failed or unfinished one is not
KINDS = ("claim", "control")


class ClaimsError(ValueError):
    """The claims file is malformed (a configuration error: exit code 2)."""


@dataclass
class Run:
    dir: Path
    record: dict
    _metrics: list | None = field(default=None, repr=False)
    cell: str | None = None  # the report's cell label (init [variant]), set by label_cells

    @property
    def labels(self) -> dict:
        return self.record.get("labels", {})

    @property
    def status(self) -> str:
        return self.record.get("status", "unknown")

    @property
    def seed(self) -> int | None:
        return self.labels.get("seed")

    @property
    def metrics(self) -> list[dict]:
        if self._metrics is None:
            path = self.dir / "metrics.jsonl"
            self._metrics = read_metrics(path) if path.exists() else []
        return self._metrics

    def variant(self) -> dict:
        return parse_variant(self.labels.get("variant", ""))


def load_runs(runs_dir: Path) -> list[Run]:
    """Every run dir (a folder with ``run.json``) under ``runs_dir``; a corrupt run.json counts as a failed run."""
    runs = []
    for run_dir, record, error in run_records(runs_dir):
        if error is not None:
            record = {"status": "failed", "error": f"unreadable run.json: {error}", "labels": {}}
        runs.append(Run(run_dir, record))
    return runs


def parse_variant(text: str) -> dict:
    """``init.alpha=1.5,init.inverse=True`` -> {"init.alpha": 1.5, "init.inverse": True} (Hydra's override syntax)."""
    out = {}
    for item in split_overrides(text or ""):
        try:
            override = OverridesParser.create().parse_override(item)
            out[override.key_or_group] = override.value()
        except OverrideParseException:  # not Hydra syntax: keep the text
            key, _, value = item.partition("=")
            out[key.lstrip("+~")] = value
    return out


def label_cells(runs: list[Run], ignore: list[str]) -> None:
    """Give each run its cell label, ``init [variant]``, leaving out the variant keys the rule ignores."""
    for r in runs:
        items = split_overrides(r.labels.get("variant", ""))
        kept = [i for i in items if not i.lstrip("+~").startswith(tuple(ignore))]
        r.cell = r.labels.get("init", "?") + (f" [{','.join(kept)}]" if kept else "")


def load_claims(path: Path) -> dict:
    """The claims file, checked: every entry names a known metric, a direction and two cells."""
    path = Path(path)
    if not path.is_file():
        raise ClaimsError(f"claims file {path} not found: pass --claims conf/claims.yaml")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ClaimsError(f"claims file {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not {"rule", "metrics", "claims"} <= set(doc):
        raise ClaimsError(f"{path} must have the top-level keys rule, metrics and claims")
    rule = doc["rule"]
    for key in ("confidence", "alpha", "min_pairs", "ci", "bootstrap_resamples", "bootstrap_seed"):
        if key not in rule:
            raise ClaimsError(f"{path}: rule.{key} is missing")
    if rule["ci"] not in VERDICT_CI:
        raise ClaimsError(f"{path}: rule.ci must be one of {VERDICT_CI}, got {rule['ci']!r}")
    if int(rule["bootstrap_resamples"]) < 10_000:
        raise ClaimsError(f"{path}: rule.bootstrap_resamples must be >= 10000")
    rule.setdefault("ignore_variant", [])
    for name, m in doc["metrics"].items():
        missing = {"label", "unit", "higher_is_better", "delta"} - set(m)
        if missing or ("summary" in m) == ("record" in m):
            raise ClaimsError(
                f"{path}: metric {name} needs label, unit, higher_is_better, delta and one of summary/record"
            )
        m.setdefault("scale", 1)
        m.setdefault("fallback", None)
    seen = set()
    for c in doc["claims"]:
        cid = c.get("id")
        if not cid or cid in seen:
            raise ClaimsError(f"{path}: every claim needs a unique id (problem at {cid!r})")
        seen.add(cid)
        for key in ("text", "source", "metric", "direction", "cells", "treatment", "control"):
            if key not in c:
                raise ClaimsError(f"{path}: claim {cid} is missing {key!r}")
        if c["metric"] not in doc["metrics"]:
            known = sorted(doc["metrics"])
            raise ClaimsError(f"{path}: claim {cid} uses unknown metric {c['metric']!r}; known: {known}")
        if c["direction"] not in ("greater", "less"):
            raise ClaimsError(f"{path}: claim {cid}: direction must be greater or less")
        c.setdefault("kind", "claim")
        if c["kind"] not in KINDS:
            raise ClaimsError(f"{path}: claim {cid}: kind must be one of {KINDS}")
        c.setdefault("scale", "cpu")
        c.setdefault("paper", None)
        c["delta"] = float(c.get("delta", doc["metrics"][c["metric"]]["delta"]))
    return doc


def matches(run: Run, cells: dict, arm: dict, ignore: list[str]) -> bool:
    """Does the run belong to the cell ``cells`` + ``arm`` (labels equal, variant equal up to ignored keys)?"""
    want = {**cells, **arm}
    lab = run.labels
    for key in ("experiment", "arch", "data", "init"):
        if key in want and lab.get(key) != want[key]:
            return False
    have = {k: v for k, v in run.variant().items() if not k.startswith(tuple(ignore))}
    spec = want.get("variant") or {}
    for key, value in spec.items():
        if value != "*" and have.get(key) != value:
            return False
    return set(have) <= set(spec)


def select(runs: list[Run], claim: dict, arm: str, ignore: list[str]) -> list[Run]:
    return [r for r in runs if matches(r, claim["cells"], claim[arm], ignore)]


def metric_value(run: Run, metric: dict):
    """The metric of one run, or None when the run did not record it."""
    if "summary" in metric:
        value = run.record.get("summary", {}).get(metric["summary"])
    else:
        spec = metric["record"]
        value = next(
            (r[spec["key"]] for r in run.metrics if spec["key"] in r and abs(r.get("epoch", 0) - spec["epoch"]) < 1e-9),
            None,
        )
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def budget(run: Run, kind: str) -> float | None:
    """The whole training budget of a run, in epochs or in seconds (init included): a lower bound on its time to a
    target it never reached. A diverged run's seconds are extrapolated from its pace to the planned epochs."""
    planned = float(run.record.get("config", {}).get("trainer", {}).get("epochs") or 0)
    done = float(run.record.get("epochs") or 0)
    if kind == "budget_epochs":
        return done if run.status == "completed" else max(planned, done)
    wall, init = run.record.get("wall_s"), run.record.get("init_s") or 0.0
    if wall is None:
        return None
    if run.status == "completed" or done <= 0:
        return wall + init
    return wall * max(planned, done) / done + init


def pairs(treatment: list[Run], control: list[Run], metric: dict) -> dict:
    """Pair the runs of two cells by seed and read the metric; diverged runs and unreached targets get the metric's
    ``fallback`` (a number, the run's budget, or ``worst``: the worst value observed in this comparison)."""
    note = []
    for name, cell in (("treatment", treatment), ("control", control)):
        seeds = [r.seed for r in cell]
        if len(seeds) != len(set(seeds)):
            note.append(f"{name} cell has several runs for one seed (add data/variant to the claim)")
        if len({r.labels.get("data") for r in cell}) > 1:
            note.append(f"{name} cell mixes datasets {sorted({str(r.labels.get('data')) for r in cell})}")
    t_by, c_by = {r.seed: r for r in treatment}, {r.seed: r for r in control}
    counts = {
        arm: {s: sum(r.status == s for r in cell) for s in ("completed", "diverged")}
        | {"other": sum(r.status not in FINISHED for r in cell)}
        for arm, cell in (("treatment", treatment), ("control", control))
    }
    rows = []
    for seed in sorted(set(t_by) & set(c_by), key=lambda s: (s is None, s)):
        t, c = t_by[seed], c_by[seed]
        if t.status not in FINISHED or c.status not in FINISHED:
            continue
        rows.append({"seed": seed, "t_run": t, "c_run": c, "t": metric_value(t, metric), "c": metric_value(c, metric)})
    observed = [v for r in rows for v in (r["t"], r["c"]) if v is not None]
    worst = (min(observed) if metric["higher_is_better"] else max(observed)) if observed else None
    complete = []
    for r in rows:
        for side in ("t", "c"):
            r[f"{side}_substituted"] = False
            if r[side] is None:
                fb = metric["fallback"]
                run = r[f"{side}_run"]
                value = worst if fb == "worst" else budget(run, fb) if isinstance(fb, str) else fb
                r[side], r[f"{side}_substituted"] = value, value is not None
        if r["t"] is not None and r["c"] is not None:
            complete.append(r)
    return {"pairs": complete, "counts": counts, "note": "; ".join(note), "ambiguous": bool(note)}
