"""report.html in a real browser: headless Debian Chromium driven by Playwright, on real smoke run dirs.

The fixture trains 2 inits x 5 seeds of the MLP on scikit-learn's digits with ``debug=smoke`` (in-process, seconds),
builds the report with scripts/report.py, opens it at a laptop's 1366x768 and checks: no console errors, no network
request, every chart drawn, one verdict row per claims-file entry (each linking to its evidence), no sideways
scrolling, the verdicts on the first screen. A screenshot is kept as a test artifact (path printed; copied into
$EMERGENCE_ARTIFACTS when set). Skipped only when no Chromium executable exists (`make chromium` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from omegaconf import open_dict

from emergence.report import claims as cl
from emergence.train import run
from scripts import report
from tests.conftest import ROOT, compose_train

SEEDS = range(5)


def chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):  # fmt: skip
        if candidate and Path(candidate).exists():
            return candidate
    return None


def smoke_runs(root: Path) -> Path:
    """Real run dirs laid out as a sweep writes them: <runs>/mlp_fashion_mnist/init=<init>/seed=<seed>."""
    runs = root / "runs"
    for init in ("kaiming", "emergence"):
        for seed in SEEDS:
            overrides = ["experiment=mlp_fashion_mnist", "data=digits", "debug=smoke", f"init={init}",
                         f"seed={seed}", "diagnostics.every_steps=2"]  # fmt: skip
            cfg = compose_train(overrides, root)
            with open_dict(cfg):
                cfg.run_dir = str(runs / "mlp_fashion_mnist" / f"init={init}" / f"seed={seed}")
            assert run(cfg)["status"] == "completed"
    return runs


@pytest.fixture(scope="module")
def built_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = smoke_runs(root)
    out = root / "results"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    return out


def test_report_files_and_a_real_verdict(built_report):
    verdicts = {v["id"]: v for v in json.loads((built_report / "verdict.json").read_text())}
    doc = cl.load_claims(ROOT / "conf" / "claims.yaml")
    assert list(verdicts) == [c["id"] for c in doc["claims"]]
    mlp = verdicts["mlp-epoch1"]
    assert mlp["n_pairs"] == 5 and mlp["verdict"] not in ("not run", "too few seeds")  # judged by the rule
    assert verdicts["cifar10-vgg19-epoch1"]["verdict"] == "not run"
    assert verdicts["mlp-alpha-f1.5"]["verdict"] == "not run"  # no max_factor-1.5 runs in the fixture
    md = (built_report / "verdict.md").read_text()
    assert md.count("\n| **") == len(doc["claims"]) and mlp["verdict"] in md
    page = (built_report / "report.html").read_text()
    assert len(page.encode()) < 2 * 1024 * 1024
    scatter = page[page.index('aria-label="E at init vs alpha'):]
    scatter = scatter[: scatter.index("</svg>")]
    assert scatter.count("<title>kaiming, seed") == 5 and scatter.count("<title>emergence, seed") == 5
    assert page.count("gradient norm") >= 2 and page.count("relative update") >= 2  # one panel per init


def test_report_in_headless_chromium(built_report, tmp_path):
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium found (install Debian's chromium: `make chromium`, or set CHROMIUM=/path)")
    from playwright.sync_api import sync_playwright

    page_path = (built_report / "report.html").resolve()
    url = page_path.as_uri()
    claim_ids = [c["id"] for c in cl.load_claims(ROOT / "conf" / "claims.yaml")["claims"]]
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.wait_for_load_state("load")
            charts = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(s => {
                const r = s.getBoundingClientRect();
                return {w: r.width, h: r.height, marks: s.querySelectorAll('path,circle').length,
                        label: s.getAttribute('aria-label')};
            })""")
            rows = page.evaluate("() => [...document.querySelectorAll('#verdict-table tbody tr')]"
                                 ".map(r => r.dataset.claim)")  # fmt: skip
            targets = page.evaluate("ids => ids.filter(id => !document.getElementById('claim-' + id))", claim_ids)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            table_top = page.evaluate("document.getElementById('verdict-table').getBoundingClientRect().top")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot))  # the first screen
            page.screenshot(path=str(tmp_path / "report_full.png"), full_page=True)
            page.hover("svg.chart [data-seed]")  # the seed highlighter runs without errors
            page.uncheck("#show-seeds")
        finally:
            browser.close()
    assert errors == []
    assert requests == [url], f"network requests besides the page itself: {requests}"
    assert len(charts) >= 10
    empty = [c["label"] for c in charts if c["w"] <= 0 or c["h"] <= 0 or c["marks"] == 0]
    assert empty == [], f"charts not drawn: {empty}"
    assert sorted(rows) == sorted(claim_ids) and len(rows) == len(claim_ids)  # one row per claim
    assert targets == [], f"verdict rows without evidence: {targets}"
    assert scroll_width <= 1366, "the page scrolls sideways on a 1366-px screen"
    assert table_top < 768, "the verdict table starts below the first screen"
    assert shot.stat().st_size > 10_000
    if os.environ.get("EMERGENCE_ARTIFACTS"):
        dest = Path(os.environ["EMERGENCE_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "report.png")
        shutil.copy(page_path, dest / "report.html")
        shot = dest / "report.png"
    print(f"report screenshot: {shot}")
