"""Aggregate run dirs into tables: ``results/<experiment>.csv`` and ``.md`` plus ``results/summary.md``.

Reads every ``run.json`` under the runs dir (never W&B). One row per experiment x data x arch x init x variant: the
number of seeds, mean ± sd over completed seeds of the target metric at init, after epoch 1, final and best, the test
metric, and steps / epochs / seconds to the target. Runs that diverged, failed or are still running are counted in
their row and listed below the table (with the first line of the error), never dropped silently; so are jobs of a
sweep that failed before their run started (a config error, a run dir in use), recorded in ``<experiment>/.sweeps/``,
and completed runs that collapsed (final validation accuracy at chance, emergence/protocol.py), which stay in the
means.

    python scripts/aggregate.py [--runs runs] [--out results] [--experiment NAME ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from emergence.protocol import is_collapsed
from emergence.rundirs import run_records
from emergence.runinfo import final_test_metrics, summary_key  # the one place that names summary keys

# (column, which metric, at which point): "target" is the run's target metric (e.g. val/acc), "test" its test split
METRICS = [("init", "target", "init"), ("epoch1", "target", "epoch1"), ("final", "target", "final"),
           ("best", "target", "best"), ("test_final", "test", "final")]  # fmt: skip
COUNTERS = ["steps_to_target", "epochs_to_target", "wall_s_to_target"]  # summary keys of their own


def load_runs(runs_dir: Path) -> list[dict]:
    """Every run.json under ``runs_dir`` (emergence/rundirs.py), dir in ``_dir``; an unreadable one is ``corrupt``."""
    runs = []
    for run_dir, record, error in run_records(runs_dir):
        record = {"status": "corrupt", "labels": {}} if error is not None else record
        record["_dir"] = str(run_dir)
        runs.append(record)
    return runs


def load_sweep_failures(runs_dir: Path) -> dict[str, list[dict]]:
    """Per experiment, the failed jobs of each sweep (``<experiment>/.sweeps/<sweep>/job*.json``) that have not
    finished since (no completed or diverged run.json in their run dir), the newest record per run dir."""
    latest: dict[str, dict] = {}
    for path in sorted(runs_dir.glob("*/.sweeps/*/job*.json")):  # sweep folders sort by start time
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        record["experiment"] = path.parent.parent.parent.name
        latest[record["run_dir"]] = record
    out = defaultdict(list)
    for run_dir, record in latest.items():
        try:
            status = json.loads((Path(run_dir) / "run.json").read_text()).get("status")
        except (OSError, json.JSONDecodeError):
            status = None
        if status not in ("completed", "diverged"):
            out[record["experiment"]].append(record)
    return out


def mean_sd(values):
    values = [v for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None, None, 0
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd, len(values)


def aggregate(runs: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for r in runs:
        lab = r.get("labels", {})
        key = (
            lab.get("experiment", "?"),
            lab.get("data", "?"),
            lab.get("arch", "?"),
            lab.get("init", "?"),
            lab.get("variant", ""),
        )
        groups[key].append(r)
    rows = []
    for (experiment, data, arch, init, variant), members in sorted(groups.items()):
        done = [r for r in members if r.get("status") == "completed"]
        metric = next((r["summary"]["target_metric"] for r in done if "summary" in r), "val/acc")
        t = metric.split("/")[-1]
        row = {
            "experiment": experiment,
            "data": data,
            "arch": arch,
            "init": init,
            "variant": variant,
            "metric": metric,
            "n_seeds": len(done),
            "n_runs": len(members),
            "n_diverged": sum(r.get("status") == "diverged" for r in members),
            "n_collapsed": sum(is_collapsed(r) for r in members),
            "n_failed": sum(r.get("status") not in ("completed", "diverged") for r in members),
            "n_reached_target": sum(r["summary"].get("steps_to_target") is not None for r in done),
            "alpha": next((r.get("alpha") for r in members), None),
            "n_units": next((r.get("n_units") for r in members), None),
            "alpha_max_factor": next((r.get("alpha_max_factor") for r in members), None),
        }
        keys = {col: summary_key(metric if kind == "target" else f"test/{t}", which) for col, kind, which in METRICS}
        keys.update({col: col for col in COUNTERS})
        for col, key in keys.items():
            mean, sd, n = mean_sd([r["summary"].get(key) for r in done])
            row[f"{col}_mean"], row[f"{col}_sd"], row[f"{col}_n"] = mean, sd, n
        tests = {t for r in done for t in final_test_metrics(r["summary"])}  # the test metrics found
        other = sorted(tests - {t})
        for k in other:
            mean, sd, _ = mean_sd([r["summary"].get(summary_key(f"test/{k}", "final")) for r in done])
            row[f"test_{k}_mean"], row[f"test_{k}_sd"] = mean, sd
        row["other_test"] = other
        row["steps_per_s_mean"] = mean_sd([r["steps"] / r["wall_s"] for r in done if r.get("wall_s")])[0]
        row["wall_s_mean"] = mean_sd([r.get("wall_s") for r in done])[0]
        row["init_s_mean"] = mean_sd([r.get("init_s") for r in done])[0]
        row["problems"] = "; ".join(
            f"{Path(r['_dir']).name}@{Path(r['_dir']).parent.name}: {r.get('status')}"
            + (f" at step {r.get('diverged_at')}" if r.get("status") == "diverged" else "")
            + (f" ({str(r['error']).splitlines()[0]})" if r.get("status") == "failed" and r.get("error") else "")
            for r in members
            if r.get("status") != "completed"
        )
        collapsed = [
            f"{Path(r['_dir']).name}@{Path(r['_dir']).parent.name}: collapsed" for r in members if is_collapsed(r)
        ]
        row["problems"] = "; ".join(p for p in (row["problems"], *collapsed) if p)
        rows.append(row)
    return rows


def fmt(mean, sd, n, pct=False, digits=2):
    if mean is None:
        return "–"
    scale = 100 if pct else 1
    text = f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"
    return text if n else "–"


def init_label(r: dict) -> str:
    """The init's name, with alpha, the number of ramp units L and the extreme factor for the emergence ramp."""
    if r.get("alpha") is None or r.get("n_units") is None or r.get("alpha_max_factor") is None:
        return r["init"]
    return f"{r['init']} (α {r['alpha']:.4g}, L {r['n_units']}, ×{r['alpha_max_factor']:.3g})"


def markdown(rows: list[dict], title: str, failures: list[dict] = ()) -> str:
    lines = [
        f"## {title}",
        "",
        "| data | arch | init | variant | seeds | metric at init | after epoch 1 | final | best | test | "
        "epochs to target | s to target | diverged/collapsed/failed | other test metrics |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pct = r["metric"].endswith("acc")
        reached = f" ({r['n_reached_target']}/{r['n_seeds']})" if r["n_seeds"] else ""
        cells = [fmt(r[f"{c}_mean"], r[f"{c}_sd"], r[f"{c}_n"], pct) for c in ("init", "epoch1", "final", "best")]
        lines.append(
            f"| {r['data']} | {r['arch']} | {init_label(r)} | {r['variant'] or '–'} | {r['n_seeds']} | "
            + " | ".join(cells)
            + f" | {fmt(r['test_final_mean'], r['test_final_sd'], r['test_final_n'], pct)} | "
            f"{fmt(r['epochs_to_target_mean'], r['epochs_to_target_sd'], r['epochs_to_target_n'])}{reached} | "
            f"{fmt(r['wall_s_to_target_mean'], r['wall_s_to_target_sd'], r['wall_s_to_target_n'], digits=1)} | "
            f"{r['n_diverged']}/{r['n_collapsed']}/{r['n_failed']} | "
            + "; ".join(f"{k} {fmt(r[f'test_{k}_mean'], r[f'test_{k}_sd'], 1)}" for k in r["other_test"])
            + " |"
        )
    lines.append("")
    metric = rows[0]["metric"] if rows else "?"
    unit = " (accuracy in %)" if metric.endswith("acc") else ""
    lines.append(
        f"Metric: {metric}{unit}, mean ± sd over completed seeds; time to target counts only seeds that reached it "
        "(shown as reached/seeds) and includes the init phase. Other test metrics: final model, mean ± sd."
    )
    problems = [f"- {r['init']} ({r['variant'] or 'default'}): {r['problems']}" for r in rows if r["problems"]]
    if problems:
        lines += ["", "Runs not completed or collapsed (final validation accuracy at chance):", *problems]
    if failures:
        lines += ["", "Jobs that failed in a sweep (exit code, overrides, error):"]
        lines += [f"- exit {f['exit_code']}: {' '.join(f.get('overrides', []))}: {f['error']}" for f in failures]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", default="results")
    ap.add_argument("--experiment", nargs="*", help="only these experiments (default: all found)")
    args = ap.parse_args(argv)
    runs_dir, out = Path(args.runs), Path(args.out)
    if not runs_dir.is_dir():
        print(f"no runs dir {runs_dir}: run an experiment first (make reproduce)", file=sys.stderr)
        return 1
    rows = aggregate(load_runs(runs_dir))
    failures = load_sweep_failures(runs_dir)
    if args.experiment:
        rows = [r for r in rows if r["experiment"] in args.experiment]
    if not rows:
        print(f"no run.json under {runs_dir}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    by_exp = defaultdict(list)
    for r in rows:
        by_exp[r["experiment"]].append(r)
    sections = []
    for experiment, exp_rows in by_exp.items():
        with open(out / f"{experiment}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(exp_rows[0]))
            writer.writeheader()
            writer.writerows(exp_rows)
        md = markdown(exp_rows, experiment, failures.get(experiment, []))
        (out / f"{experiment}.md").write_text(md)
        sections.append(md)
        print(f"wrote {out / experiment}.csv and .md ({len(exp_rows)} rows)")
    (out / "summary.md").write_text("# Results\n\n" + "\n".join(sections))
    print(f"table: {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
