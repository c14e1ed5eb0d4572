"""``results/report.html``: one self-contained page (inline CSS, SVG and a few lines of JS; no network when opened).

Top to bottom: the answer (verdict counts), the verdict table (one row per claims-file entry, coloured by verdict,
linking to its evidence), the evidence per claim (paired per-seed values and every statistic), then per experiment
the learning curves with seed bands, per-seed dot plots, time to target, E at init and during training, per-layer
diagnostics, and finally the diverged/failed runs and the provenance of every run used.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

from emergence.report import figures as fg
from emergence.report import tables as tb
from emergence.report.claims import label_cells
from emergence.report.verdict import VERDICTS, counts
from emergence.runinfo import summary_key

COLORS = {"supported": "#1a7f37", "contradicted": "#cf222e", "equivalent": "#0969da", "inconclusive": "#9a6700",
          "too few seeds": "#8250df", "not run": "#6e7781"}  # fmt: skip

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:1300px;margin:0 auto;padding:12px 20px 40px}
h1{font-size:22px;margin:6px 0} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px} .meta{color:#59636e;font-size:12px}
.answer{font-size:15px;margin:8px 0} .pill{display:inline-block;color:#fff;border-radius:10px;padding:1px 9px;
margin:2px 3px;font-size:13px;white-space:nowrap}
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:12.5px}
th,td{border-bottom:1px solid #d8dee4;padding:3px 5px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f6f8fa} td.v{color:#fff;font-weight:600;text-align:center}
tr.kind-control td:first-child{border-left:3px solid #d0d7de}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:10px;align-items:start}
.legend{font-size:11px;line-height:1.3;margin:2px 0 0 40px} .legend span{margin-right:9px;white-space:nowrap}
.legend i{display:inline-block;width:10px;height:3px;margin:0 3px 3px 0;vertical-align:middle}
ul.notrun{font-size:12.5px;columns:2;column-gap:24px;padding-left:18px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:6px 8px;min-width:0}
svg.chart{width:100%;height:auto;display:block}
.plotbg{fill:#fff;stroke:#d0d7de} line.gl{stroke:#eaeef2}
.tick{font-size:9px;fill:#59636e} .alabel{font-size:10.5px;fill:#1f2328} .ctitle{font-size:11px;font-weight:600}
.leg{font-size:8.5px;fill:#1f2328} .legbg{fill:#fff;opacity:.8}
.band{opacity:.15;stroke:none} .meanline{fill:none;stroke-width:2.2} .seedline{fill:none;stroke-width:.8;opacity:.55}
.pairline{fill:none;stroke:#8c959f;stroke-width:.9;opacity:.7} .dot{stroke-width:1.3}
.hl{stroke-width:3!important;opacity:1!important} .noseeds .seedline{display:none}
dl.stats{display:grid;grid-template-columns:auto 1fr;gap:0 10px;font-size:12px;margin:4px 0}
dl.stats dt{color:#59636e} dl.stats dd{margin:0} .note{font-size:12px;color:#59636e}
details summary{cursor:pointer;font-weight:600}
"""

JS = """
document.querySelectorAll('svg.chart').forEach(function (svg) {
  svg.addEventListener('mouseover', function (e) {
    var s = e.target.getAttribute ? e.target.getAttribute('data-seed') : null;
    if (s === null) return;
    svg.querySelectorAll('[data-seed]').forEach(function (el) {
      el.classList.toggle('hl', el.getAttribute('data-seed') === s);
    });
  });
  svg.addEventListener('mouseleave', function () {
    svg.querySelectorAll('.hl').forEach(function (el) { el.classList.remove('hl'); });
  });
});
document.getElementById('show-seeds').addEventListener('change', function (e) {
  document.body.classList.toggle('noseeds', !e.target.checked);
});
"""


def pill(verdict: str, n: int | None = None) -> str:
    text = f"{n} {verdict}" if n is not None else verdict
    return f'<span class="pill" style="background:{COLORS[verdict]}">{escape(text)}</span>'


def ordered(results: list[dict]) -> list[dict]:
    """Judged entries first (by verdict), claims before controls, then the claims file's order."""
    return sorted(results, key=lambda r: (VERDICTS.index(r["verdict"]), r["claim"]["kind"] != "claim"))


def cells_text(claim: dict) -> str:
    where = ", ".join(f"{k}={v}" for k, v in claim["cells"].items())
    return f"{fg.describe_arm(claim['treatment'])} vs {fg.describe_arm(claim['control'])} ({where})"


def verdict_table(results: list[dict], rule: dict) -> str:
    head = ('<table id="verdict-table"><colgroup><col style="width:36%"><col style="width:9%"><col style="width:16%">'
            '<col style="width:13%"><col style="width:6%"><col style="width:9%"><col style="width:11%"></colgroup>'
            "<thead><tr><th>claim (metric, unit)</th><th>paper</th><th>ours: treatment vs control, mean ± sd</th>"
            f"<th>difference [{rule['confidence']:.0%} CI]</th><th>p (Holm)</th><th>verdict</th><th>seeds</th>"
            "</tr></thead><tbody>")  # fmt: skip
    rows = []
    for r in ordered(results):
        c = r["claim"]
        arrow = "↑" if c["direction"] == "greater" else "↓"
        rows.append(
            f'<tr class="kind-{c["kind"]}" data-claim="{escape(c["id"])}"><td><a href="#claim-{escape(c["id"])}">'
            f"{escape(c['id'])}</a> <span class='meta'>{c['kind']}, {c['scale']}: {escape(r['metric']['label'])}, "
            f"{escape(tb.unit(r))}, {arrow} claimed</span><br>{escape(c['text'])}</td>"
            f"<td>{escape(c['paper'] or '–')}</td><td>{escape(tb.ours(r))}</td><td>{escape(tb.diff_ci(r, rule))}</td>"
            f"<td>{tb.pval(r['p_holm'])}</td><td class='v' style='background:{COLORS[r['verdict']]}'>"
            f"{escape(r['verdict'])}</td><td>{escape(tb.seeds_text(r))}</td></tr>"
        )
    return head + "".join(rows) + "</tbody></table>"


def evidence(r: dict, rule: dict, colors: dict) -> str:
    c, s = r["claim"], r["stats"]
    cells = cells_text(c)
    head = (f'<div class="card" id="claim-{escape(c["id"])}"><b>{escape(c["id"])}</b> {pill(r["verdict"])}'
            f"<div class='note'>{escape(c['text'])}. Source: {escape(c['source'])}. Cells: {escape(cells)}. "
            f"Runs: {len(r['treatment_runs'])} treatment, {len(r['control_runs'])} control.</div>")  # fmt: skip
    if r["note"]:
        head += f"<div class='note'>⚠ {escape(r['note'])}</div>"
    if not s:
        return head + "<div class='note'>No seed pairs at this scale.</div></div>"
    items = [
        ("seed pairs", tb.seeds_text(r)),
        ("mean difference", f"{tb.signed(s['mean_diff'])} {tb.unit(r)} (sd {tb.num(s['sd_diff'])})"),
        ("bootstrap CI", "[" + ", ".join(tb.signed(v) for v in s["ci_boot"]) + "]" if s["ci_boot"] else "–"),
        ("t-interval", "[" + ", ".join(tb.signed(v) for v in s["ci_t"]) + "]" if s["ci_t"] else "–"),
        ("p: t-test / Wilcoxon", f"{tb.pval(s['p_t'])} / {tb.pval(s['p_wilcoxon'])}"),
        ("p (Holm)", tb.pval(r["p_holm"])),
        ("Cohen's d_z", tb.num(s["d_z"])),
        ("P(improvement)", tb.num(s["p_improve"])),
        (f"seeds for CI ±{c['delta']:g}", str(s["seeds_needed"] or "–")),
        ("substituted values", f"{r['substituted']} (diverged runs, unreached targets)"),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    chart = fg.pair_plot(r, colors) or ""
    return head + chart + f'<dl class="stats">{dl}</dl></div>'


def not_run(results: list[dict]) -> str:
    items = []
    for r in results:
        if r["verdict"] == "not run":
            cid = escape(r["claim"]["id"])
            note = f" <span class='meta'>⚠ {escape(r['note'])}</span>" if r["note"] else ""
            items.append(f"<li id='claim-{cid}'><b>{cid}</b>: {escape(cells_text(r['claim']))}{note}</li>")
    if not items:
        return ""
    return f"<h3>Not run at this scale (no runs in a cell)</h3><ul class='notrun'>{''.join(items)}</ul>"


def experiment_section(name: str, runs: list, colors: dict) -> str:
    out = [f'<h2 id="exp-{escape(name)}">Experiment {escape(name)}</h2>']
    panels = defaultdict(list)
    for r in runs:
        panels[(r.labels.get("data", "?"), r.labels.get("arch", "?"))].append(r)
    for (data, arch), members in sorted(panels.items()):
        where = f"{arch} on {data}"
        metric = next((r.record["summary"].get("target_metric") for r in members if r.record.get("summary")), "val/acc")
        t = metric.split("/")[-1]
        epoch1, test_final = summary_key(metric, "epoch1"), summary_key(f"test/{t}", "final")
        scale = 100.0 if fg.is_pct(metric) else 1.0
        unit = fg.unit_of(metric) or metric
        cells = fg.group_cells(members)
        plain = {k: v for k, v in cells.items() if "[" not in k}
        variants = {k: v for k, v in cells.items() if "[" in k}
        n = len({r.seed for r in members})
        out.append(f"<h3>{escape(where)} <span class='meta'>({len(members)} runs, {n} seeds)</span></h3>")
        charts = [fg.curves(plain or cells, metric, where, colors)]
        if variants:
            base = {k: v for k, v in plain.items() if k in {x.split(" [")[0] for x in variants}}
            charts.append(fg.curves({**base, **variants}, metric, where + ": controls", colors))
        if any("val/nll" in rec for r in members for rec in r.metrics[:3]):
            charts.append(fg.curves(plain or cells, "val/nll", where, colors))
        charts.append(fg.summary_dots(cells, epoch1, colors, scale=scale, ylabel=f"{metric} ({unit})",
                                      title=f"{metric} after epoch 1, {where}, per seed"))  # fmt: skip
        charts.append(fg.summary_dots(cells, test_final, colors, scale=scale, ylabel=f"test {t} ({unit})",
                                      title=f"final test {t}, {where}, per seed"))  # fmt: skip
        target = next((r.record["summary"].get("target") for r in members if r.record.get("summary")), None)
        if target is not None:
            charts.append(fg.summary_dots(cells, "epochs_to_target", colors, fallback="budget_epochs",
                                          ylabel="epochs", title=f"epochs to {metric} ≥ {target} (hollow: never)"))
            charts.append(fg.summary_dots(cells, "wall_s_to_target", colors, fallback="budget_seconds",
                                          ylabel="seconds, init included",
                                          title=f"seconds to {metric} ≥ {target}, init incl. (hollow: never)"))
        charts.append(fg.e_vs_alpha(members, where, colors))
        charts.append(fg.curves(plain or cells, "emergence/log10_E", where + ": E during training", colors))
        out.append('<div class="grid">' + "".join(f'<div class="card">{c}</div>' for c in charts if c) + "</div>")
        layer = [c for label, rs in plain.items() for c in fg.layer_panels(rs, where, label)]
        if layer:
            out.append(f"<h3>Per-layer diagnostics, {escape(where)} <span class='meta'>(one panel per init; colour "
                       "= depth, dark blue = input side, yellow = output side; mean over completed seeds)</span></h3>")
            out.append('<div class="grid">' + "".join(f'<div class="card">{c}</div>' for c in layer) + "</div>")
    return "".join(out)


def problems(runs: list) -> str:
    bad = [r for r in runs if r.status != "completed"]
    if not bad:
        return "<p>None: every run used completed.</p>"
    rows = "".join(
        f"<tr><td>{escape(str(r.labels.get('experiment')))}</td><td>{escape(fg.cell_label(r))}</td>"
        f"<td>{escape(str(r.labels.get('arch')))}</td><td>{r.seed}</td><td>{escape(r.status)}</td>"
        f"<td>{escape(str(r.record.get('diverged_at') or '–'))}</td>"
        f"<td>{escape(str(r.record.get('reason') or r.record.get('error') or '–'))}</td></tr>"
        for r in bad
    )
    return ("<table><thead><tr><th>experiment</th><th>cell</th><th>arch</th><th>seed</th><th>status</th>"
            f"<th>step</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>")  # fmt: skip


def provenance(runs: list, runs_dir) -> str:
    rows = []
    for r in runs:
        p = tb.provenance(r)
        rel = str(r.dir.relative_to(runs_dir)) if r.dir.is_relative_to(runs_dir) else str(r.dir)
        dirty = {True: " (dirty)", False: "", None: " (?)"}[p["dirty"]]
        rows.append(f"<tr><td>{escape(rel)}</td><td>{escape(p['commit'] + dirty)}</td><td>{escape(p['date'])}</td>"
                    f"<td>{escape(p['device'])}</td><td><code>{escape(p['command'])}</code></td>"
                    f"<td>{escape(p['versions'])}</td></tr>")  # fmt: skip
    return ('<details><summary>Provenance of every run used (' + str(len(runs)) + " runs)</summary>"
            '<table><colgroup><col style="width:22%"><col style="width:9%"><col style="width:10%">'
            '<col style="width:8%"><col style="width:26%"><col style="width:25%"></colgroup><thead><tr>'
            "<th>run dir</th><th>git commit</th><th>date</th><th>device</th><th>command</th><th>packages</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></details>")  # fmt: skip


def sentence(results: list[dict], rule: dict) -> str:
    """The plain-language answer at the top of the page."""
    claims = [r for r in results if r["claim"]["kind"] == "claim"]
    judged = [r for r in claims if r["verdict"] not in ("not run", "too few seeds")]
    few = sum(r["verdict"] == "too few seeds" for r in claims)
    parts = [f"{len(judged)} of {len(claims)} paper claims can be judged with these runs"]
    for v in ("supported", "contradicted", "equivalent", "inconclusive"):
        ids = [r["claim"]["id"] for r in judged if r["verdict"] == v]
        if ids:
            parts.append(f"{v}: {', '.join(ids)}")
    if few:
        parts.append(f"{few} ran with fewer than {rule['min_pairs']} seed pairs (too few seeds to decide)")
    n_not = sum(r["verdict"] == "not run" for r in claims)
    if n_not:
        parts.append(f"{n_not} need runs not made at this scale")
    return "; ".join(parts) + "."


def build(results: list[dict], runs: list, doc: dict, meta: dict) -> str:
    rule = doc["rule"]
    label_cells(runs, rule.get("ignore_variant", []))
    colors = fg.palette(runs)
    answer = [f"<p class='answer'>{escape(sentence(results, rule))}</p>"]
    for kind, name in (("claim", "Paper claims"), ("control", "Controls")):
        c = counts(results, kind)
        pills = "".join(pill(v, n) for v, n in c.items() if n)
        answer.append(f"<div class='answer'><b>{name}:</b> {pills}</div>")
    commits = sorted({tb.provenance(r)["commit"] for r in runs})
    experiments = defaultdict(list)
    for r in runs:  # the LR-selection runs (lr_<experiment>) are tuning, not evidence: results/lr_selection.md has them
        experiments[r.labels.get("experiment", "?")].append(r)
    tuning = sum(len(rs) for name, rs in experiments.items() if str(name).startswith("lr_"))
    experiments = {name: rs for name, rs in experiments.items() if not str(name).startswith("lr_")}
    legend = " ".join(pill(v) for v in VERDICTS)
    body = [
        "<h1>Does Emergence init do what the paper says?</h1>", *answer,
        f"<p class='meta'>{meta['n_runs']} runs under <code>{escape(meta['runs_shown'])}</code>, built {meta['date']}, "
        f"commits {escape(', '.join(commits) or '–')}. Paired over seeds; supported = {rule['confidence']:.0%} "
        f"interval ({rule['ci']} of bootstrap and t) on the claimed side of 0 and Holm p &lt; {rule['alpha']}; "
        f"&lt; {rule['min_pairs']} pairs = too few seeds; diverged runs count as losses. Verdicts: {legend}</p>",
        '<h2 id="verdicts">Verdicts (one row per entry of the claims file)</h2>', verdict_table(results, rule),
        '<h2 id="evidence">Evidence per claim</h2><div class="grid">',
        *[evidence(r, rule, colors) for r in ordered(results) if r["verdict"] != "not run"], "</div>",
        not_run(results),
        "<p><label><input type='checkbox' id='show-seeds' checked> show single seeds in the curves</label> "
        "<span class='meta'>(hover a line or dot for its seed; bands: 95 % t-interval of the mean over completed "
        "seeds)</span></p>",
        *[experiment_section(name, rs, colors) for name, rs in sorted(experiments.items())],
        f"<p class='meta'>{tuning} LR-selection runs (experiments <code>lr_*</code>) are not drawn here: "
        "<code>lr_selection.md</code> holds their scores and the chosen LRs.</p>" if tuning else "",
        '<h2 id="problems">Diverged and failed runs</h2>', problems(runs),
        '<h2 id="provenance">Provenance</h2>', provenance(runs, meta["runs"]),
    ]  # fmt: skip
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>emergence: verdicts</title><style>{CSS}</style></head><body><main>{''.join(body)}</main>"
            f"<script>{JS}</script></body></html>")  # fmt: skip
