"""scripts/report.py on hand-written run dirs: bad input exits cleanly, diverged and failed runs show up."""

from __future__ import annotations

import json
from pathlib import Path

from scripts import report


def write_run(root: Path, init: str, seed: int, status: str = "completed", acc: float | None = 0.8, variant=""):
    d = root / "mlp_fashion_mnist" / (f"init={init}" + (f",{variant}" if variant else "")) / f"seed={seed}"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(f"- experiment=mlp_fashion_mnist\n- init={init}\n- seed={seed}\n")
    (d / "train.log").write_text("[2026-11-30 12:00:00,000][emergence][INFO] - start\n")
    record = {
        "labels": {"experiment": "mlp_fashion_mnist", "arch": "mlp", "data": "fashion_mnist", "init": init,
                   "seed": seed, "variant": variant},
        "status": status, "diverged_at": 12 if status == "diverged" else None,
        "reason": "non-finite loss" if status == "diverged" else None,
        "git": {"commit": "0123456789abcdef", "dirty": status == "failed"}, "versions": {"torch": "2.14.1"},
        "device": {"type": "cpu", "threads": 1}, "config": {"trainer": {"epochs": 5}, "init": {}},
        "epochs": 5.0 if status == "completed" else 0.1, "wall_s": 5.0, "init_s": 0.1,
        "summary": {"val_acc_epoch1": acc, "test_acc_final": acc, "target_metric": "val/acc", "target": 0.85},
    }  # fmt: skip
    (d / "run.json").write_text(json.dumps(record))
    records = [{"step": 0, "epoch": 0, "val/acc": 0.1, "emergence/log10_E": 13.0 + (init == "emergence")},
               {"step": 10, "epoch": 1.0, "val/acc": acc if acc is not None else "nan"}]  # fmt: skip
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_missing_runs_and_bad_claims_exit_cleanly(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "verdict.md").write_text("earlier table")
    assert report.main(["--runs", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "no runs dir" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report.main(["--runs", str(tmp_path / "empty"), "--out", str(out)]) == 1
    bad = tmp_path / "claims.yaml"
    bad.write_text("rule: {confidence: 0.95}\nmetrics: {}\nclaims: []\n")
    assert report.main(["--runs", str(tmp_path / "empty"), "--out", str(out), "--claims", str(bad)]) == 2
    assert "rule.alpha is missing" in capsys.readouterr().err
    assert (out / "verdict.md").read_text() == "earlier table"  # nothing already written is lost


def test_diverged_and_failed_runs_are_reported(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(5):
        write_run(runs, "kaiming", seed, acc=0.80 + 0.01 * seed)
        write_run(runs, "emergence", seed, acc=0.83 + 0.01 * seed)
    write_run(runs, "emergence", 5, status="diverged", acc=None)
    write_run(runs, "kaiming", 5, acc=0.85)
    write_run(runs, "emergence", 6, status="failed", acc=None)
    write_run(runs, "kaiming", 6, acc=0.85)
    out = tmp_path / "results"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    verdicts = {v["id"]: v for v in json.loads((out / "verdict.json").read_text())}
    v = verdicts["mlp-epoch1"]
    assert v["n_pairs"] == 6 and v["substituted"] == 1  # the diverged seed is a pair, scored 0; the failed one is not
    assert v["counts"]["treatment"] == {"completed": 5, "diverged": 1, "other": 1}
    assert v["pairs"][5] == {"seed": 5, "treatment": 0.0, "control": 0.85, "treatment_substituted": True,
                             "control_substituted": False}  # fmt: skip
    md = (out / "verdict.md").read_text()
    assert "6 pairs, 1/0 diverged (T/C), 1 failed/unfinished" in md
    page = (out / "report.html").read_text()
    assert "non-finite loss" in page and ">failed<" in page  # the diverged/failed table
    assert "python -m emergence.train experiment=mlp_fashion_mnist init=emergence seed=6" in page  # provenance
    assert "0123456789 (dirty)" in page and "2026-11-30 12:00:00" in page
