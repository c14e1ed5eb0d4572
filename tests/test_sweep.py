"""A Hydra multirun (2 inits x 2 seeds) through the CLI writes deterministic run dirs; the aggregation reads them."""

from __future__ import annotations

import csv
import subprocess
import sys

from tests.conftest import ROOT

ARGS = [
    "-m",
    "arch=mlp",
    "init=xavier,emergence",
    "seed=0,1",
    "data=synthetic",
    "logger=none",
    "trainer.epochs=1",
    "arch.depth=2",
    "arch.width=16",
    "name=sweep_test",
]


def test_multirun_runs_skips_on_rerun_and_aggregates(subprocess_env, tmp_path):
    cmd = [sys.executable, "-m", "emergence.train", *ARGS]
    first = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, cwd=ROOT, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    runs = sorted(tmp_path.glob("runs/sweep_test/*/seed=*/run.json"))
    common = "arch.depth=2,arch.width=16,arch=mlp,data=synthetic"
    assert [p.parent.parent.name + "/" + p.parent.name for p in runs] == [
        f"{common},init={init},trainer.epochs=1/seed={seed}" for init in ("emergence", "xavier") for seed in (0, 1)
    ]
    mtimes = [p.stat().st_mtime_ns for p in runs]

    second = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, cwd=ROOT, timeout=300)
    assert second.returncode == 0
    assert "skipping" in second.stdout + second.stderr
    assert [p.stat().st_mtime_ns for p in runs] == mtimes  # nothing retrained

    out = tmp_path / "results"
    agg = subprocess.run(
        [sys.executable, "scripts/aggregate.py", "--runs", str(tmp_path / "runs"), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert agg.returncode == 0, agg.stderr
    rows = list(csv.DictReader(open(out / "sweep_test.csv")))
    assert sorted(r["init"] for r in rows) == ["emergence", "xavier"]
    assert all(r["n_seeds"] == "2" and r["n_diverged"] == "0" for r in rows)
    assert all(0 <= float(r["final_mean"]) <= 1 for r in rows)
    assert "| synthetic | mlp | emergence (α 2, L 3, ×2) |" in (out / "sweep_test.md").read_text()
