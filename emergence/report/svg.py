"""Small inline-SVG charts for the HTML report: lines with bands, dot plots with paired lines, scatter plots.

Hand-made SVG keeps ``report.html`` self-contained and small (no plotting library in the page, no network): every
chart is a ``<svg class="chart">`` with a viewBox (it scales to its column), axis labels with units, and ``<title>``
children on every line and point, which browsers show on hover. Elements of one seed carry ``data-seed`` so the
page's script can highlight a seed across a chart.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#843c39", "#7b4173"]  # fmt: skip
W, H = 440, 270
M = {"l": 58, "r": 12, "t": 26, "b": 44}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def ramp(i: int, n: int) -> str:
    """Colour of layer i of n, from dark blue (input side) to yellow (output side)."""
    stops = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    t = i / max(1, n - 1) * (len(stops) - 1)
    k = min(int(t), len(stops) - 2)
    f = t - k
    rgb = [round(a + (b - a) * f) for a, b in zip(stops[k], stops[k + 1])]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def fmt_tick(v: float, log: bool = False) -> str:
    if log:
        return f"1e{int(round(v))}" if abs(v - round(v)) < 1e-9 else ""
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.1e}"


class Frame:
    """Axes with linear (or log10) scales; ``x(v)``/``y(v)`` map data to pixels."""

    def __init__(self, xs, ys, *, logy=False, xcats=None, pad=0.05):
        self.logy, self.xcats = logy, xcats
        ys = [v for v in ys if v is not None and (v > 0 or not logy)]
        ys = [math.log10(v) for v in ys] if logy else ys
        xs = [v for v in xs if v is not None]
        self.x0, self.x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
        self.y0, self.y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 0.5, self.x1 + 0.5
        if self.y1 == self.y0:
            self.y0, self.y1 = self.y0 - (abs(self.y0) * 0.05 or 0.5), self.y1 + (abs(self.y1) * 0.05 or 0.5)
        span = self.y1 - self.y0
        self.y0, self.y1 = self.y0 - pad * span, self.y1 + pad * span
        if xcats is None:
            xspan = self.x1 - self.x0
            self.x0, self.x1 = self.x0 - 0.02 * xspan, self.x1 + 0.02 * xspan

    def x(self, v: float) -> float:
        return M["l"] + (v - self.x0) / (self.x1 - self.x0) * (W - M["l"] - M["r"])

    def y(self, v: float) -> float | None:
        if self.logy:
            if v is None or v <= 0:
                return None
            v = math.log10(v)
        return H - M["b"] - (v - self.y0) / (self.y1 - self.y0) * (H - M["t"] - M["b"])

    def axes(self, title: str, xlabel: str, ylabel: str) -> str:
        out = [f'<rect x="{M["l"]}" y="{M["t"]}" width="{W - M["l"] - M["r"]}" height="{H - M["t"] - M["b"]}" '
               'class="plotbg"/>']  # fmt: skip
        for v in nice_ticks(self.y0, self.y1):
            py = H - M["b"] - (v - self.y0) / (self.y1 - self.y0) * (H - M["t"] - M["b"])
            out.append(f'<line x1="{M["l"]}" x2="{W - M["r"]}" y1="{py:.1f}" y2="{py:.1f}" class="gl"/>')
            out.append(f'<text x="{M["l"] - 4}" y="{py + 3:.1f}" class="tick" text-anchor="end">'
                       f"{fmt_tick(v, self.logy)}</text>")  # fmt: skip
        if self.xcats is None:
            for v in nice_ticks(self.x0, self.x1):
                px = self.x(v)
                out.append(f'<line y1="{M["t"]}" y2="{H - M["b"]}" x1="{px:.1f}" x2="{px:.1f}" class="gl"/>')
                out.append(f'<text x="{px:.1f}" y="{H - M["b"] + 13}" class="tick" text-anchor="middle">'
                           f"{fmt_tick(v)}</text>")  # fmt: skip
        else:
            for i, name in enumerate(self.xcats):
                px, short = self.x(i), name if len(name) <= 24 else name[:23] + "…"
                out.append(f'<text x="{px:.1f}" y="{H - M["b"] + 12}" class="tick" text-anchor="end" '
                           f'transform="rotate(-35 {px:.1f} {H - M["b"] + 12})"><title>{escape(name)}</title>'
                           f"{escape(short)}</text>")  # fmt: skip
        out.append(f'<text x="{W / 2:.0f}" y="15" class="ctitle" text-anchor="middle">{escape(title)}</text>')
        if self.xcats is None:
            out.append(f'<text x="{(M["l"] + W - M["r"]) / 2:.0f}" y="{H - 8}" class="alabel" '
                       f'text-anchor="middle">{escape(xlabel)}</text>')  # fmt: skip
        out.append(f'<text x="12" y="{(M["t"] + H - M["b"]) / 2:.0f}" class="alabel" text-anchor="middle" '
                   f'transform="rotate(-90 12 {(M["t"] + H - M["b"]) / 2:.0f})">{escape(ylabel)}</text>')  # fmt: skip
        return "".join(out)


def svg(body: str, label: str, height: float = H) -> str:
    return (f'<svg class="chart" viewBox="0 0 {W} {height:.0f}" role="img" aria-label="{escape(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">{body}</svg>')  # fmt: skip


def _path(points) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))


def line_chart(
    series: list[dict], *, title: str, xlabel: str, ylabel: str, logy: bool = False, show_legend: bool = True,
    markers: bool = True,
) -> str:
    """A chart plus (with ``show_legend``) its legend; mean points are marked so a one-point series shows (with
    ``markers``: charts of many lines, such as one per layer, leave them out to keep the page small)."""
    """Series: {label, color, x, mean, lo, hi (band; may be None), seeds: [{seed, x, y, dashed}]} -> one chart."""
    xs = [v for s in series for v in s["x"]] + [v for s in series for r in s.get("seeds", []) for v in r["x"]]
    ys = [v for s in series for k in ("mean", "lo", "hi") for v in (s.get(k) or [])]
    ys += [v for s in series for r in s.get("seeds", []) for v in r["y"]]
    f = Frame(xs, ys, logy=logy)
    out = [f.axes(title, xlabel, ylabel)]
    for s in series:
        col = s["color"]
        if s.get("lo") and s.get("hi"):
            upper = [(f.x(x), f.y(v)) for x, v in zip(s["x"], s["hi"]) if f.y(v) is not None]
            lower = [(f.x(x), f.y(v)) for x, v in zip(s["x"], s["lo"]) if f.y(v) is not None]
            if upper and lower:
                out.append(f'<path d="{_path(upper + lower[::-1])} Z" fill="{col}" class="band"/>')
        for r in s.get("seeds", []):
            pts = [(f.x(x), f.y(v)) for x, v in zip(r["x"], r["y"]) if v is not None and f.y(v) is not None]
            if pts:
                dash = ' stroke-dasharray="4 3"' if r.get("dashed") else ""
                tip = escape(f"{s['label']}, seed {r['seed']}{r.get('note', '')}")
                out.append(f'<path d="{_path(pts)}" stroke="{col}" class="seedline" data-seed="{r["seed"]}"{dash}>'
                           f"<title>{tip}</title></path>")  # fmt: skip
        pts = [(f.x(x), f.y(v)) for x, v in zip(s["x"], s["mean"]) if v is not None and f.y(v) is not None]
        if pts:
            out.append(f'<path d="{_path(pts)}" stroke="{col}" class="meanline"><title>{escape(s["label"])}: mean'
                       "</title></path>")  # fmt: skip
            if markers and len(pts) <= 60 or len(pts) == 1:
                out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" fill="{col}"/>' for x, y in pts]
    chart = svg("".join(out), title)
    return chart + legend([(s["label"], s["color"]) for s in series]) if show_legend else chart


def legend(items: list[tuple[str, str]]) -> str:
    """An HTML legend (below a chart, so it never hides data)."""
    spans = "".join(f'<span><i style="background:{col}"></i>{escape(label)}</span>' for label, col in items)
    return f'<div class="legend">{spans}</div>'


def dot_plot(cells: list[dict], *, title: str, ylabel: str, logy: bool = False) -> str:
    """Cells: {label, color, points: [{seed, y, hollow, note}]}; lines join the same seed across the cells."""
    ys = [p["y"] for c in cells for p in c["points"]]
    f = Frame(list(range(len(cells))), ys, logy=logy, xcats=[c["label"] for c in cells], pad=0.08)
    f.x0, f.x1 = -0.6, len(cells) - 0.4
    out = [f.axes(title, "", ylabel)]
    by_seed: dict = {}
    for i, c in enumerate(cells):
        for p in c["points"]:
            by_seed.setdefault(p["seed"], []).append((i, p["y"]))
    for seed, pts in sorted(by_seed.items(), key=lambda kv: str(kv[0])):
        xy = [(f.x(i), f.y(v)) for i, v in pts if f.y(v) is not None]
        if len(xy) > 1:
            out.append(f'<path d="{_path(xy)}" class="pairline" data-seed="{seed}"><title>seed {seed}</title></path>')
    for i, c in enumerate(cells):
        n = len(c["points"])
        for k, p in enumerate(c["points"]):
            py = f.y(p["y"])
            if py is None:
                continue
            px = f.x(i) + (k - (n - 1) / 2) * min(3.0, 18 / max(n, 1))
            fill = "none" if p.get("hollow") else c["color"]
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.6" fill="{fill}" stroke="{c["color"]}" '
                       f'class="dot" data-seed="{p["seed"]}"><title>{escape(c["label"])}, seed {p["seed"]}: '
                       f'{p["y"]:.4g}{escape(p.get("note", ""))}</title></circle>')  # fmt: skip
    longest = max((min(len(c["label"]), 24) for c in cells), default=0)
    return svg("".join(out), title, height=H + max(0.0, 5.0 * longest * 0.57 - 28))  # room for slanted labels


def scatter(groups: list[dict], *, title: str, xlabel: str, ylabel: str) -> str:
    """Groups: {label, color, points: [{x, y, seed, note}]}."""
    xs = [p["x"] for g in groups for p in g["points"]]
    ys = [p["y"] for g in groups for p in g["points"]]
    f = Frame(xs, ys, pad=0.08)
    out = [f.axes(title, xlabel, ylabel)]
    for g in groups:
        for p in g["points"]:
            out.append(f'<circle cx="{f.x(p["x"]):.1f}" cy="{f.y(p["y"]):.1f}" r="3.6" fill="{g["color"]}" '
                       f'class="dot" data-seed="{p["seed"]}"><title>{escape(g["label"])}, seed {p["seed"]}'
                       f'{escape(p.get("note", ""))}: {p["y"]:.4g}</title></circle>')  # fmt: skip
    return svg("".join(out), title) + legend([(g["label"], g["color"]) for g in groups])
