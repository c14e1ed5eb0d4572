"""The report's charts, built from run dirs: learning curves with seed bands, per-seed dot plots with paired lines,
time to target, E at init against alpha and E during training, and per-layer diagnostics (one panel per init).

Every function takes runs (``claims.Run``) and returns inline SVG (``svg.py``). Means and bands use only completed
runs; diverged runs are drawn as dashed single-seed lines and hollow dots, never dropped.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np
from scipy import stats

from emergence.report import svg
from emergence.report.claims import Run, budget


def cell_label(run: Run) -> str:
    if run.cell is not None:
        return run.cell
    v = run.labels.get("variant", "")
    return run.labels.get("init", "?") + (f" [{v}]" if v else "")


BASE_COLORS = {"kaiming": "#1f77b4", "emergence": "#2ca02c", "xavier": "#ff7f0e", "torch_default": "#7f7f7f",
               "gradinit": "#9467bd"}  # fmt: skip
EXTRA_COLORS = ["#d62728", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173",
                "#3182bd", "#e6550d", "#31a354"]  # fmt: skip


def palette(runs: list[Run]) -> dict[str, str]:
    """One colour per cell label for the whole report: fixed for the plain inits, then one per variant."""
    labels = sorted({cell_label(r) for r in runs})
    colors, k = {}, 0
    for label in labels:
        if label in BASE_COLORS:
            colors[label] = BASE_COLORS[label]
        else:
            colors[label], k = EXTRA_COLORS[k % len(EXTRA_COLORS)], k + 1
    return colors


def short(label: str) -> str:
    """``kaiming [optim.layerwise_lr={alpha:1.2599}]`` -> ``kaiming layerwise_lr={alpha:1.2599}``."""
    if " [" not in label:
        return label
    init, variant = label[:-1].split(" [", 1)
    return init + " " + ",".join(part.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + part.split("=", 1)[1]
                                 if "=" in part else part for part in variant.split(",") if part)  # fmt: skip


def group_cells(runs: list[Run]) -> dict[str, list[Run]]:
    """{cell label: runs}, plain inits first, then variants, each alphabetical."""
    cells = defaultdict(list)
    for r in runs:
        cells[cell_label(r)].append(r)
    return dict(sorted(cells.items(), key=lambda kv: ("[" in kv[0], kv[0])))


def is_pct(metric: str) -> bool:
    return metric.endswith("acc")


def unit_of(metric: str) -> str:
    return "%" if is_pct(metric) else "BLEU" if metric.endswith("bleu") else "nats/token" if "nll" in metric else ""


MAX_POINTS = 120  # per line: keeps report.html small for long runs


def thin(points: list) -> list:
    """Every k-th point (and the last) so that a line has at most MAX_POINTS points."""
    if len(points) <= MAX_POINTS:
        return points
    k = -(-len(points) // MAX_POINTS)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def mean_band(values: list[float]) -> tuple[float, float | None, float | None]:
    """Mean and 95 % t-interval of the mean over seeds (no band for one seed)."""
    a = np.asarray(values, dtype=float)
    m = float(a.mean())
    if len(a) < 2:
        return m, None, None
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))
    return m, m - half, m + half


def series_over_time(cells: dict[str, list[Run]], key: str, colors: dict, scale: float = 1.0) -> list[dict]:
    """Mean ± 95 % band over completed seeds of ``key`` against epochs; every seed as a thin line."""
    out, x = [], "epoch"
    for label, runs in cells.items():
        per_x, seeds = defaultdict(list), []
        for r in runs:
            pts = [(rec[x], rec[key] * scale) for rec in r.metrics if isinstance(rec.get(key), (int, float))
                   and math.isfinite(rec[key]) and rec.get(x) is not None]  # fmt: skip
            if not pts:
                continue
            pts = thin(pts)
            note = "" if r.status == "completed" else f" ({r.status})"
            seeds.append({"seed": r.seed, "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                          "dashed": r.status != "completed", "note": note})  # fmt: skip
            if r.status == "completed":
                for px, py in pts:
                    per_x[round(px, 6)].append(py)
        if not seeds:
            continue
        xs = thin(sorted(per_x))
        bands = [mean_band(per_x[v]) for v in xs]
        n_done = sum(r.status == "completed" for r in runs)
        out.append({
            "label": f"{short(label)} (n={n_done})", "color": colors.get(label, "#000"), "x": xs,
            "mean": [b[0] for b in bands],
            "lo": [b[1] for b in bands] if all(b[1] is not None for b in bands) else None,
            "hi": [b[2] for b in bands] if all(b[2] is not None for b in bands) else None, "seeds": seeds,
        })  # fmt: skip
    return out


def curves(cells: dict[str, list[Run]], metric: str, where: str, colors: dict) -> str | None:
    scale = 100.0 if is_pct(metric) else 1.0
    unit = unit_of(metric)
    series = series_over_time(cells, metric, colors, scale)
    if not series:
        return None
    return svg.line_chart(series, title=f"{metric} per init, {where}",
                          xlabel="epoch", ylabel=f"{metric}" + (f" ({unit})" if unit else ""))  # fmt: skip


def summary_dots(cells: dict[str, list[Run]], key: str, colors: dict, *, title: str, ylabel: str,
                 scale: float = 1.0, fallback: str | None = None) -> str | None:  # fmt: skip
    """One dot per seed and cell of ``summary[key]``; diverged runs (and, with a ``fallback`` budget, unreached
    targets) are hollow at their substitute value (0, or the whole budget: claims.budget)."""
    out = []
    for label, runs in cells.items():
        pts = []
        for r in sorted(runs, key=lambda r: str(r.seed)):
            if r.status not in ("completed", "diverged"):
                continue
            v = r.record.get("summary", {}).get(key)
            note, hollow = "", False
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                hollow = True
                if fallback:
                    v, note = budget(r, fallback) or 0.0, " (target not reached: the whole budget)"
                else:
                    v, note = 0.0, f" ({r.status}: counted as 0)"
            elif r.status != "completed":
                note, hollow = f" ({r.status} later)", True
            pts.append({"seed": r.seed, "y": v * scale, "hollow": hollow, "note": note})
        if pts:
            out.append({"label": f"{short(label)} (n={len(pts)})", "color": colors.get(label, "#000"), "points": pts})
    if not out:
        return None
    return svg.dot_plot(out, title=title, ylabel=ylabel)


def pair_plot(result: dict, colors: dict) -> str | None:
    """The per-seed values of one claim's two cells, joined by seed."""
    claim, metric = result["claim"], result["metric"]
    if not result["pairs"]:
        return None
    scale = float(metric["scale"])
    cells = []
    for side, arm in (("c", "control"), ("t", "treatment")):
        runs = result[f"{arm}_runs"]
        col = colors.get(cell_label(runs[0]), "#000") if runs else "#000"
        pts = [{"seed": p["seed"], "y": p[side] * scale, "hollow": p[f"{side}_substituted"],
                "note": " (substituted: diverged or target not reached)" if p[f"{side}_substituted"] else ""}
               for p in result["pairs"]]  # fmt: skip
        cells.append({"label": describe_arm(claim[arm]), "color": col, "points": pts})
    unit = metric["unit"]
    return svg.dot_plot(cells, title=f"{claim['id']}: {len(result['pairs'])} seed pairs",
                        ylabel=f"{metric['label']} ({unit})")  # fmt: skip


def describe_arm(arm: dict) -> str:
    variant = ",".join(f"{k}={v}" for k, v in (arm.get("variant") or {}).items())
    return arm.get("init", "?") + (f" [{variant}]" if variant else "")


def alpha_of(run: Run) -> float | None:
    """The effective alpha of an emergence run (1/alpha for the inverse ramp); 1 for a plain Kaiming run."""
    init = run.record.get("config", {}).get("init", {})
    alpha = init.get("alpha") or run.record.get("alpha")  # config null: the max_factor rule's alpha, in run.json
    if run.labels.get("init") == "emergence" and alpha:
        a = float(alpha)
        return 1 / a if init.get("inverse") else a
    if cell_label(run) == "kaiming":  # the plain base init (alpha = 1); variants such as the LR control are not
        return 1.0
    return None


def e_vs_alpha(runs: list[Run], where: str, colors: dict) -> str | None:
    """log10 E at init against the effective alpha (alpha < 1 = inverse ramp), one dot per seed."""
    groups = defaultdict(list)
    for r in runs:
        a = alpha_of(r)
        e0 = next((rec["emergence/log10_E"] for rec in r.metrics if rec.get("epoch") == 0
                   and isinstance(rec.get("emergence/log10_E"), (int, float))), None)  # fmt: skip
        if a is not None and e0 is not None and math.isfinite(e0):
            groups[r.labels["init"]].append({"x": a, "y": e0, "seed": r.seed, "note": f", alpha_eff={a:.3g}"})
    if not any(g == "emergence" for g in groups):
        return None
    items = [{"label": k, "color": colors.get(k, "#000"), "points": v} for k, v in sorted(groups.items())]
    return svg.scatter(items, title=f"E at init vs alpha, {where}", xlabel="alpha (below 1: inverse ramp 1/alpha)",
                       ylabel="log10 E at init")  # fmt: skip


LAYER_KEY = re.compile(r"^layer/(.+)/(grad_norm|rel_update)$")


def layer_panels(runs: list[Run], where: str, label: str) -> list[str]:
    """Gradient norm and relative update per layer over steps (mean over completed seeds), one colour per depth."""
    per = {"grad_norm": defaultdict(lambda: defaultdict(list)), "rel_update": defaultdict(lambda: defaultdict(list))}
    order: list[str] = []
    for r in runs:
        if r.status != "completed":
            continue
        for rec in r.metrics:
            for k, v in rec.items():
                m = LAYER_KEY.match(k)
                if m and isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
                    if m.group(1) not in order:
                        order.append(m.group(1))
                    per[m.group(2)][m.group(1)][rec["step"]].append(v)
    charts = []
    n_seeds = sum(r.status == "completed" for r in runs)
    for stat, ylabel in (("grad_norm", "gradient norm ‖g‖ (log)"), ("rel_update", "relative update ‖ΔW‖/‖W‖ (log)")):
        series = []
        for i, name in enumerate(order):
            steps = thin(sorted(per[stat][name]))
            if steps:
                series.append({"label": f"{i}: {name}", "color": svg.ramp(i, len(order)), "x": steps,
                               "mean": [float(np.mean(per[stat][name][s])) for s in steps], "seeds": []})  # fmt: skip
        if series:
            chart = svg.line_chart(series, title=f"{label}: {stat} per layer, {where}, n={n_seeds}", xlabel="step",
                                   ylabel=ylabel, logy=True, show_legend=False, markers=False)  # fmt: skip
            charts.append(chart)
    return charts
