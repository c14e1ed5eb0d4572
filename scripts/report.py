"""Verdicts at a glance: ``<out>/verdict.md``, ``<out>/verdict.json`` and one self-contained ``<out>/report.html``.

Reads every run dir under ``--runs`` (``run.json``, ``metrics.jsonl``; never W&B), judges each entry of the claims
file with its pre-registered rule (paired statistics over seeds, Holm across the report) and writes the table and the
page. docs/experiments.md explains the claims, the statistics and the verdict rule.

    python scripts/report.py [--runs runs] [--out results] [--claims conf/claims.yaml]

Exit codes: 0 written, 1 no runs dir or no run in it, 2 a malformed claims file.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from emergence.report import claims as cl
from emergence.report import html, tables, verdict

ROOT = Path(__file__).resolve().parent.parent


def as_json(results: list[dict]) -> list[dict]:
    """The machine-readable verdicts: one entry per claim, statistics in the metric's display unit."""
    out = []
    for r in results:
        s = dict(r["stats"] or {})
        out.append({
            "id": r["claim"]["id"], "kind": r["claim"]["kind"], "verdict": r["verdict"], "metric": r["claim"]["metric"],
            "unit": r["metric"]["unit"], "n_pairs": len(r["pairs"]), "p_holm": r["p_holm"], "counts": r["counts"],
            "substituted": r["substituted"], "note": r["note"], "stats": s,
            "pairs": [{"seed": p["seed"], "treatment": p["t"], "control": p["c"], "treatment_substituted":
                       p["t_substituted"], "control_substituted": p["c_substituted"]} for p in r["pairs"]],
        })  # fmt: skip
    return out


def shown(path: Path) -> str:
    """A path relative to the repository when it lies inside it (so the committed table names no machine)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs", help="the runs dir (default: runs)")
    ap.add_argument("--out", default="results", help="where verdict.md and report.html go (default: results)")
    ap.add_argument("--claims", default=str(ROOT / "conf" / "claims.yaml"), help="the claims file")
    args = ap.parse_args(argv)
    try:
        doc = cl.load_claims(Path(args.claims))
    except cl.ClaimsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs_dir = Path(args.runs).resolve()
    if not runs_dir.is_dir():
        print(f"error: no runs dir {args.runs}: run the experiments first (make reproduce)", file=sys.stderr)
        return 1
    runs = cl.load_runs(runs_dir)
    if not runs:
        print(f"error: no run.json under {args.runs}: run the experiments first (make reproduce)", file=sys.stderr)
        return 1
    results = verdict.evaluate(doc, runs)
    meta = {
        "runs": runs_dir, "runs_shown": shown(runs_dir), "n_runs": len(runs), "claims": shown(Path(args.claims)),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verdict.md").write_text(tables.verdict_markdown(results, doc, meta), encoding="utf-8")
    (out / "verdict.json").write_text(json.dumps(as_json(results), indent=1, default=str) + "\n", encoding="utf-8")
    page = html.build(results, runs, doc, meta)
    (out / "report.html").write_text(page, encoding="utf-8")
    print(tables.headline(results))
    for r in results:
        if r["verdict"] != "not run":
            print(f"  {r['claim']['id']:<32} {r['verdict']:<14} {tables.diff_ci(r, doc['rule'])} {tables.unit(r)}")
    print(f"wrote {out / 'verdict.md'}, {out / 'verdict.json'} and {out / 'report.html'} ({len(page) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
