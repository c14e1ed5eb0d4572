"""Equal tuning budget: pick each cell's learning rate from the same grid on the validation split (README "Results").

``experiments/lr_select.sh`` runs every cell (experiment x data x arch x init x variant: baselines, GradInit,
emergence and the controls) at {0.5, 1, 2} x the recipe's LR on selection seeds that the reported runs never use,
under the experiment name ``lr_<experiment>``. This script reads those run dirs and writes

- ``<out>/lr_selection.csv``: one row per cell and grid point (seeds, diverged, collapsed, the criterion's mean),
  ``chosen = 1`` on the selected LR;
- ``<out>/lr_selection.md``: the same as one table, the chosen LR in bold.

A cell whose grid misses a point or has unfinished or failed runs chooses nothing, and ``lookup`` says so.

Criterion: the last value of the validation metric in ``metrics.jsonl`` (the end of the run's budget), mean over the
selection seeds; the task's target metric by default (val/acc, higher is better), ``--criterion EXP=val/nll:min`` per
experiment. A grid point where any seed diverged, failed or collapsed ranks below every clean one; ties go to the LR
closest to the recipe's (the grid's middle). ``lookup`` prints the chosen LR of one cell for the experiment scripts:

    python scripts/select_lr.py select --runs runs --out results [--criterion translation_gettext=val/nll:min]
    python scripts/select_lr.py lookup --table results/lr_selection.csv --experiment mlp_fashion_mnist \\
        --arch mlp --init kaiming --variant schedule.warmup_epochs=1
    python scripts/select_lr.py supersede --runs runs --table results/lr_selection.csv --to runs.superseded

``supersede`` moves the reported runs whose LR is not their cell's chosen one (left behind when a new selection
chose another LR) out of the runs dir, so that the tables and the paired report never see two runs of one cell and
seed; a sweep without a cell of its own (the alpha and turning-point ablations) goes with the emergence cell's LR.
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

import yaml

from emergence.protocol import is_collapsed
from emergence.rundirs import run_records, split_overrides

PREFIX = "lr_"
IGNORED = ("optim.lr", "name", "trainer.cpu_threads", "diagnostics.every_steps", "data", "arch", "init", "debug",
           "experiment", "seed")  # not part of a cell's identity
FIELDS = ["experiment", "data", "arch", "init", "variant", "lr", "factor", "criterion", "n_runs", "n_completed",
          "n_diverged", "n_collapsed", "n_failed", "score", "scores", "chosen"]  # fmt: skip


def _canonical(v):
    """1.0 and 1 are the same override value; so are nested ones."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: _canonical(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_canonical(x) for x in v]
    return v


def variant_key(overrides) -> str:
    """Canonical cell variant: overrides without the ignored keys, values parsed as YAML, sorted."""
    items = []
    for o in overrides:
        for part in split_overrides(o):
            key, _, value = part.lstrip("+~").partition("=")
            if key in IGNORED or key.startswith("hydra"):
                continue
            try:
                parsed = yaml.safe_load(value.replace(":", ": ")) if value.startswith("{") else yaml.safe_load(value)
            except yaml.YAMLError:
                parsed = value
            items.append(f"{key}={json.dumps(_canonical(parsed), sort_keys=True)}")
    return ",".join(sorted(items))


def last_value(run_dir: Path, metric: str) -> float | None:
    value = None
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        try:
            v = json.loads(line).get(metric)
        except json.JSONDecodeError:
            continue
        if isinstance(v, (int, float)) and math.isfinite(v):
            value = v
    return value


def load(runs_dir: Path) -> list[dict]:
    """The LR-selection runs (experiment ``lr_*``) under ``runs_dir`` (emergence/rundirs.py), their dir in ``_dir``."""
    runs = []
    for run_dir, record, error in run_records(runs_dir):
        record = {"status": "corrupt"} if error is not None else record
        labels = record.get("labels") or {}
        if not str(labels.get("experiment", "")).startswith(PREFIX):
            continue
        record["_dir"] = run_dir
        runs.append(record)
    return runs


def parse_criteria(specs: list[str]) -> dict[str, tuple[str, bool]]:
    out = {}
    for spec in specs:
        exp, _, rest = spec.partition("=")
        metric, _, mode = rest.partition(":")
        if not exp or not metric or mode not in ("", "max", "min"):
            raise SystemExit(f"--criterion must look like EXPERIMENT=val/nll:min; got {spec!r}")
        out[exp] = (metric, mode != "min")
    return out


def _rank(row: dict, higher: bool, recipe: float) -> tuple:
    """Clean grid points first, then the best score, then the LR closest to the recipe's."""
    s = row["score"]
    return (s is None, 0 if s is None else (-s if higher else s), abs(math.log(row["lr"] / recipe)))


def select(runs: list[dict], criteria: dict[str, tuple[str, bool]]) -> list[dict]:
    cells = defaultdict(lambda: defaultdict(list))
    for r in runs:
        lab = r["labels"]
        experiment = lab["experiment"][len(PREFIX):]
        lr = float(((r.get("config") or {}).get("optim") or {}).get("lr", "nan"))
        key = (experiment, lab.get("data", "?"), lab.get("arch", "?"), lab.get("init", "?"),
               variant_key([lab.get("variant", "")]))  # fmt: skip
        cells[key][lr].append(r)
    rows = []
    for key, grid in sorted(cells.items()):
        experiment = key[0]
        some = next(r for rs in grid.values() for r in rs)
        default_metric = (some.get("summary") or {}).get("target_metric", "val/acc")
        metric, higher = criteria.get(experiment, (default_metric, True))
        lrs = sorted(grid)
        recipe = lrs[len(lrs) // 2]
        cell_rows = []
        for lr in lrs:
            members = grid[lr]
            done = [r for r in members if r.get("status") == "completed"]
            collapsed = [r for r in done if is_collapsed(r)]
            scores = [last_value(r["_dir"], metric) for r in done]
            clean = len(done) == len(members) and not collapsed and None not in scores and scores
            score = statistics.fmean(scores) if clean else None
            cell_rows.append({
                "experiment": experiment, "data": key[1], "arch": key[2], "init": key[3], "variant": key[4],
                "lr": lr, "factor": round(lr / recipe, 6), "criterion": f"{metric}:{'max' if higher else 'min'}",
                "n_runs": len(members), "n_completed": len(done),
                "n_diverged": sum(r.get("status") == "diverged" for r in members), "n_collapsed": len(collapsed),
                "n_failed": sum(r.get("status") not in ("completed", "diverged") for r in members),
                "score": score, "scores": " ".join(f"{s:.6g}" for s in scores if s is not None), "chosen": 0,
            })  # fmt: skip
        complete = len(lrs) >= 3 and all(r["n_failed"] == 0 for r in cell_rows)
        if complete:  # a grid with a missing point or unfinished/failed runs chooses nothing (lookup says so)
            min(cell_rows, key=lambda row, h=higher, m=recipe: _rank(row, h, m))["chosen"] = 1
        rows += cell_rows
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "# Learning-rate selection",
        "",
        "Each cell's LR from the grid {0.5, 1, 2} x the recipe LR, on the validation split, with selection seeds that",
        "the reported runs never use (scripts/select_lr.py). Score: the criterion at the end of the run, mean over",
        "seeds; ✗ = a seed diverged, failed or collapsed (ranks last). **Bold**: chosen.",
        "",
        "| experiment | data | arch | init | variant | criterion | 0.5x | 1x | 2x | chosen LR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_cell = defaultdict(list)
    for r in rows:
        by_cell[(r["experiment"], r["data"], r["arch"], r["init"], r["variant"], r["criterion"])].append(r)
    for cell, rs in by_cell.items():
        cells = []
        for r in sorted(rs, key=lambda r: r["lr"]):
            text = f"{r['lr']:g}: " + ("✗" if r["score"] is None else f"{r['score']:.4g}")
            if r["n_diverged"] or r["n_collapsed"]:
                text += f" ({r['n_diverged']} div, {r['n_collapsed']} coll)"
            cells.append(f"**{text}**" if r["chosen"] else text)
        cells += ["–"] * (3 - len(cells))
        chosen = next((f"{r['lr']:g}" for r in rs if r["chosen"]), "incomplete")
        lines.append("| " + " | ".join([*cell[:4], cell[4] or "–", cell[5], *cells[:3], chosen]) + " |")
    return "\n".join(lines) + "\n"


def lookup(table: Path, experiment: str, arch: str, init: str, variant: list[str], data: str = "-") -> int:
    if not table.exists():
        print(f"no LR selection table at {table}: run experiments/lr_select.sh first (same SCALE)", file=sys.stderr)
        return 2
    want = variant_key(variant)
    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["experiment"] == experiment]
    match = [r for r in rows if r["arch"] == arch and r["init"] == init and r["variant"] == want
             and r["chosen"] == "1" and data in ("-", r["data"])]  # fmt: skip
    if not match and any(r["arch"] == arch and r["init"] == init and r["variant"] == want for r in rows):
        print(f"{table}: the LR selection of {experiment} {arch} {init} [{want}] is incomplete (a grid point is "
              "missing or has unfinished or failed runs): rerun experiments/lr_select.sh", file=sys.stderr)
        return 2
    if len(match) != 1:
        have = sorted({f"{r['arch']} {r['init']} [{r['variant']}]" for r in rows}) or ["none"]
        print(f"{table}: no single selected LR for {experiment} {arch} {init} [{want}] (found {len(match)}); cells "
              f"of {experiment}: {'; '.join(have)}. Run experiments/lr_select.sh for it first.", file=sys.stderr)
        return 2
    print(f"{float(match[0]['lr']):.6g}")
    return 0


def supersede(runs_dir: Path, table: Path, to: Path, dry_run: bool = False) -> int:
    """Move reported run dirs at an LR other than their cell's chosen one from ``runs_dir`` to ``to``."""
    if not table.is_file():
        print(f"{table} does not exist: run experiments/lr_select.sh first", file=sys.stderr)
        return 2
    with open(table, newline="") as f:
        chosen = {(r["experiment"], r["arch"], r["init"], r["variant"]): float(r["lr"])
                  for r in csv.DictReader(f) if r["chosen"] == "1"}  # fmt: skip
    moved = kept = 0
    for run_dir, record, error in run_records(runs_dir):
        if error is not None or not record:
            continue
        labels = record.get("labels") or {}
        experiment, arch, init = labels.get("experiment", ""), labels.get("arch"), labels.get("init")
        lr = ((record.get("config") or {}).get("optim") or {}).get("lr")
        if experiment.startswith(PREFIX) or lr is None:
            continue
        want = chosen.get((experiment, arch, init, variant_key([labels.get("variant", "")])))
        if want is None:  # an ablation of a cell (alpha, turning point) runs at the cell's LR
            want = chosen.get((experiment, arch, init, variant_key([""])))
        if want is None or math.isclose(float(lr), want, rel_tol=1e-9):
            kept += 1
            continue
        moved += 1
        target = to / run_dir.relative_to(runs_dir)
        print(f"{'would move' if dry_run else 'moved'} {run_dir} (lr {float(lr):g}; chosen {want:g}) -> {target}")
        if not dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            run_dir.rename(target)
    print(f"{moved} superseded run dir(s) {'to move' if dry_run else 'moved'} to {to}; {kept} kept")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("select", help="write lr_selection.csv/.md from the lr_* run dirs")
    s.add_argument("--runs", default="runs")
    s.add_argument("--out", default="results")
    s.add_argument("--criterion", action="append", default=[], help="EXPERIMENT=METRIC[:min|max] (default target)")
    q = sub.add_parser("lookup", help="print the chosen LR of one cell")
    q.add_argument("--table", default="results/lr_selection.csv")
    q.add_argument("--experiment", required=True)
    q.add_argument("--arch", required=True)
    q.add_argument("--init", required=True)
    q.add_argument("--variant", nargs="*", default=[])
    q.add_argument("--data", default="-", help="the data option ('-': the experiment's only one)")
    m = sub.add_parser("supersede", help="move reported runs at an LR the table did not choose out of the runs dir")
    m.add_argument("--runs", default="runs")
    m.add_argument("--table", default="results/lr_selection.csv")
    m.add_argument("--to", required=True, help="where they go (outside --runs)")
    m.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    if args.command == "supersede":
        runs_dir, to = Path(args.runs).resolve(), Path(args.to).resolve()
        if to == runs_dir or runs_dir in to.parents:
            print(f"--to {args.to} must lie outside --runs {args.runs} (the tables read everything under it)",
                  file=sys.stderr)  # fmt: skip
            return 2
        return supersede(runs_dir, Path(args.table), to, args.dry_run)
    if args.command == "lookup":
        return lookup(Path(args.table), args.experiment, args.arch, args.init, args.variant, args.data)
    runs_dir = Path(args.runs)
    rows = select(load(runs_dir), parse_criteria(args.criterion)) if runs_dir.is_dir() else []
    if not rows:
        print(f"no lr_* runs under {runs_dir}: run experiments/lr_select.sh first", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lr_selection.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "lr_selection.md").write_text(markdown(rows))
    n_cells = sum(r["chosen"] for r in rows)
    print(f"wrote {out / 'lr_selection.csv'} and .md ({n_cells} cells, {len(rows)} grid points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
