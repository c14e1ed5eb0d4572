"""emergence/rundirs.py: which run dirs are found, in which order, and how an unreadable run.json is reported; and that
the scripts and the report built on it treat a corrupt run the way each of them documents."""

from __future__ import annotations

import json

from emergence.report.claims import load_runs as report_runs
from emergence.rundirs import run_records, split_overrides
from scripts.aggregate import load_runs as aggregate_runs
from scripts.select_lr import load as select_runs


def write(path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def make_runs(root):
    good = {"status": "completed", "labels": {"experiment": "lr_x", "init": "kaiming"}}
    write(root / "lr_x" / "b" / "seed=1" / "run.json", json.dumps(good))
    write(root / "lr_x" / "a" / "seed=0" / "run.json", json.dumps(good | {"status": "diverged"}))
    write(root / "lr_x" / "c" / "seed=0" / "run.json", '{"status": "comp')  # cut short while written
    write(root / "lr_x" / "d" / "seed=0" / "run.json", b"\xff\xfe not utf-8")
    write(root / "lr_x" / "e" / "seed=0" / "metrics.jsonl", "{}\n")  # no run.json: not a run dir
    return root


def test_run_records_order_and_errors(tmp_path):
    rows = list(run_records(make_runs(tmp_path)))
    assert [d.parent.name for d, _, _ in rows] == ["a", "b", "c", "d"]  # sorted by path, not by creation
    assert [r["status"] if r else None for _, r, _ in rows] == ["diverged", "completed", None, None]
    assert rows[0][2] is None and isinstance(rows[2][2], ValueError) and isinstance(rows[3][2], ValueError)


def test_run_records_of_an_empty_or_missing_folder(tmp_path):
    assert list(run_records(tmp_path)) == []
    assert list(run_records(tmp_path / "absent")) == []


def test_each_reader_counts_a_corrupt_run_as_it_says(tmp_path):
    make_runs(tmp_path)
    agg = aggregate_runs(tmp_path)
    assert [r["status"] for r in agg] == ["diverged", "completed", "corrupt", "corrupt"]
    assert agg[2]["_dir"] == str(tmp_path / "lr_x" / "c" / "seed=0")
    # select_lr keeps only lr_* experiments: a corrupt run has no labels and is left out
    assert [r["status"] for r in select_runs(tmp_path)] == ["diverged", "completed"]
    report = report_runs(tmp_path)
    assert [r.record["status"] for r in report] == ["diverged", "completed", "failed", "failed"]
    assert report[2].record["error"].startswith("unreadable run.json:")


def test_plot_draws_completed_runs_and_skips_corrupt_ones(tmp_path):
    from scripts.plot import curves, main

    runs = make_runs(tmp_path / "runs")
    labels = {"experiment": "lr_x", "data": "d", "arch": "mlp", "init": "kaiming"}
    write(runs / "lr_x" / "b" / "seed=1" / "run.json", json.dumps({"status": "completed", "labels": labels}))
    points = '{"epoch": 0, "val/acc": 0.1}\n{"epoch": 1, "val/acc": 0.5}\n'
    write(runs / "lr_x" / "b" / "seed=1" / "metrics.jsonl", points)
    data, metrics = curves(runs)
    assert metrics == {"lr_x": "val/acc"}
    assert data["lr_x"][("d", "mlp")]["kaiming"] == [[(0, 0.1), (1, 0.5)]]  # the diverged and corrupt runs are left out
    assert main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "lr_x_curves.png").stat().st_size > 0


def test_split_overrides_keeps_nested_values_whole():
    assert split_overrides("a=1,b={x:1,y:2},c=[1,2],d=f(1,2)") == ["a=1", "b={x:1,y:2}", "c=[1,2]", "d=f(1,2)"]
    assert split_overrides(" a=1 ,, b=2,") == ["a=1", "b=2"]
    assert split_overrides("") == []
