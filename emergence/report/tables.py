"""Text of the verdict table (``results/verdict.md``, and the cells of the HTML table) and each run's provenance.

Numbers are shown in the metric's display unit (accuracy in points of %, BLEU, nats/token, epochs, seconds).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path

import yaml

from emergence.report.verdict import VERDICTS, counts, interval


def num(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–" if v is None else str(v)
    return f"{v:.{digits}f}"


def signed(v, digits: int = 2) -> str:
    return "–" if v is None else f"{v:+.{digits}f}"


def pval(p) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def ours(r: dict) -> str:
    s = r["stats"]
    if not s:
        return "–"
    return (f"{num(s['mean_treatment'])} ± {num(s['sd_treatment'])} vs "
            f"{num(s['mean_control'])} ± {num(s['sd_control'])}")  # fmt: skip


def diff_ci(r: dict, rule: dict) -> str:
    s = r["stats"]
    if not s or s.get("ci_t") is None:
        return signed(s["mean_diff"]) if s and s["mean_diff"] is not None else "–"
    lo, hi = interval(s, rule["ci"])
    return f"{signed(s['mean_diff'])} [{signed(lo)}, {signed(hi)}]"


def seeds_text(r: dict) -> str:
    c = r["counts"]
    div = c["treatment"]["diverged"] + c["control"]["diverged"]
    other = c["treatment"]["other"] + c["control"]["other"]
    text = f"{len(r['pairs'])} pairs"
    if div:
        text += f", {c['treatment']['diverged']}/{c['control']['diverged']} diverged (T/C)"
    if other:
        text += f", {other} failed/unfinished"
    return text


def unit(r: dict) -> str:
    return r["metric"]["unit"]


def headline(results: list[dict]) -> str:
    parts = []
    for kind, name in (("claim", "Paper claims"), ("control", "Controls")):
        c = counts(results, kind)
        parts.append(f"{name}: " + ", ".join(f"{n} {v}" for v, n in c.items() if n))
    return "; ".join(parts)


def verdict_markdown(results: list[dict], doc: dict, meta: dict) -> str:
    rule = doc["rule"]
    lines = [
        "# Verdicts",
        "",
        f"Built by `scripts/report.py` from {meta['n_runs']} run dirs under `{meta['runs_shown']}` on {meta['date']}; "
        f"claims and rule: `{meta['claims']}` (docs/experiments.md).",
        "",
        f"**{headline(results)}.**",
        "",
        f"Rule: paired over seeds; difference = treatment − control in the metric's unit, {rule['confidence']:.0%} "
        f"interval = {rule['ci']} of the paired bootstrap ({rule['bootstrap_resamples']} resamples, seed "
        f"{rule['bootstrap_seed']}) and the t-interval; p = paired {rule.get('test', 't')}-test, Holm-adjusted over "
        f"every comparison with a p-value; supported needs the interval on the claimed side of 0 and p(Holm) < "
        f"{rule['alpha']}; fewer than {rule['min_pairs']} pairs: too few seeds. Diverged runs count as losses "
        "(the metric's fallback value).",
        "",
        "| claim | kind | paper | ours (treatment vs control, mean ± sd) | difference [95 % CI] | p (Holm) | verdict "
        "| seeds | seeds for ±δ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, s = r["claim"], r["stats"] or {}
        lines.append(
            f"| **{c['id']}**: {c['text']} ({r['metric']['label']}, {unit(r)}; {c['direction']} is better for the "
            f"claim) | {c['kind']} | {c['paper'] or '–'} | {ours(r)} | {diff_ci(r, rule)} | {pval(r['p_holm'])} | "
            f"**{r['verdict']}** | {seeds_text(r)} | {s.get('seeds_needed') or '–'} (δ = {c['delta']:g}) |"
        )
    notes = [f"- {r['claim']['id']}: {r['note']}" for r in results if r["note"]]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", "Verdicts: " + ", ".join(VERDICTS) + "."]
    return "\n".join(lines) + "\n"


TIMESTAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def provenance(run) -> dict:
    """Commit and dirty flag, versions, device, the exact command and the date of one run."""
    rec = run.record
    overrides = []
    path = Path(run.dir) / ".hydra" / "overrides.yaml"
    if path.exists():
        try:
            overrides = yaml.safe_load(path.read_text()) or []
        except yaml.YAMLError:
            overrides = ["<unreadable .hydra/overrides.yaml>"]
    date = None
    log = Path(run.dir) / "train.log"
    if log.exists():
        with open(log, encoding="utf-8", errors="replace") as f:
            m = TIMESTAMP.match(f.readline())
            date = m.group(1) if m else None
    if date is None and (Path(run.dir) / "run.json").exists():
        ts = (Path(run.dir) / "run.json").stat().st_mtime
        date = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    git = rec.get("git", {})
    dev = rec.get("device", {})
    return {
        "commit": (git.get("commit") or "?")[:10],
        "dirty": git.get("dirty"),
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(rec.get("versions", {}).items())),
        "device": " ".join(str(dev[k]) for k in ("type", "name", "threads") if dev.get(k) is not None)
        + (" threads" if dev.get("threads") else ""),
        "command": "python -m emergence.train " + " ".join(str(o) for o in overrides) if overrides else "?",
        "date": date or "?",
    }
