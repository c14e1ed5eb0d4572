"""The tables count every run: completed seeds give mean ± sd, diverged and failed runs are counted and listed."""

from __future__ import annotations

import csv
import json

from scripts.aggregate import main as aggregate_main


def write_run(root, init, seed, status, acc=None):
    run_dir = root / "exp" / f"init={init}" / f"seed={seed}"
    run_dir.mkdir(parents=True)
    record = {"status": status, "labels": {"experiment": "exp", "data": "d", "arch": "mlp", "init": init,
                                            "variant": "", "seed": seed}}  # fmt: skip
    if status == "completed":
        record.update(steps=10, wall_s=2.0, init_s=0.1, summary={
            "target_metric": "val/acc", "val_acc_init": 0.1, "val_acc_epoch1": acc, "val_acc_final": acc,
            "val_acc_best": acc, "test_acc_final": acc, "steps_to_target": None, "epochs_to_target": None,
            "wall_s_to_target": None})  # fmt: skip
    if status == "diverged":
        record.update(diverged_at=7)
    (run_dir / "run.json").write_text(json.dumps(record))


def test_aggregate_counts_diverged_and_failed_runs(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "kaiming", 0, "completed", 0.80)
    write_run(runs, "kaiming", 1, "completed", 0.90)
    write_run(runs, "emergence", 0, "completed", 0.85)
    write_run(runs, "emergence", 1, "diverged")
    write_run(runs, "emergence", 2, "failed")
    assert aggregate_main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    rows = {r["init"]: r for r in csv.DictReader(open(tmp_path / "out" / "exp.csv"))}
    assert rows["kaiming"]["n_seeds"] == "2" and abs(float(rows["kaiming"]["final_mean"]) - 0.85) < 1e-9
    assert abs(float(rows["kaiming"]["final_sd"]) - 0.0707107) < 1e-6  # sample sd of (0.8, 0.9)
    assert rows["emergence"]["n_seeds"] == "1" and rows["emergence"]["n_runs"] == "3"
    assert rows["emergence"]["n_diverged"] == "1" and rows["emergence"]["n_failed"] == "1"
    md = (tmp_path / "out" / "exp.md").read_text()
    assert "seed=1@init=emergence: diverged at step 7" in md and "seed=2@init=emergence: failed" in md
    assert "| 85.00 ± 7.07 |" in md


def test_aggregate_counts_collapsed_runs_beside_diverged_ones(tmp_path):
    runs = tmp_path / "runs"
    cls = {"data": {"_target_": "emergence.tasks.classification.ClassificationTask", "dataset": "fashion_mnist"}}
    write_run(runs, "xavier", 0, "completed", 0.85)
    write_run(runs, "xavier", 1, "completed", 0.1005)  # chance: collapsed, still a completed seed
    write_run(runs, "xavier", 2, "diverged")
    for seed in (0, 1):
        path = runs / "exp" / "init=xavier" / f"seed={seed}" / "run.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "config": cls}))
    assert aggregate_main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    row = next(csv.DictReader(open(tmp_path / "out" / "exp.csv")))
    assert (row["n_seeds"], row["n_collapsed"], row["n_diverged"]) == ("2", "1", "1")
    md = (tmp_path / "out" / "exp.md").read_text()
    assert "| 1/1/0 |" in md and "seed=1@init=xavier: collapsed" in md
