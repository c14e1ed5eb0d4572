"""scripts/select_lr.py: the LR grid's choice per cell (diverged/collapsed points rank last, ties go to the recipe LR)
and the lookup the experiment scripts use, on synthetic run dirs with known answers."""

import json

import pytest

from scripts import select_lr

CLS = {"_target_": "emergence.tasks.classification.ClassificationTask", "dataset": "fashion_mnist"}
TR = {"_target_": "emergence.tasks.translation.TranslationTask"}


def _run(root, exp, init, lr, seed, values, status="completed", variant="", data=CLS, metric="val/acc", arch="mlp"):
    d = root / f"lr_{exp}" / f"{variant or 'default'},init={init},optim.lr={lr}" / f"seed={seed}"
    d.mkdir(parents=True)
    labels = {"experiment": f"lr_{exp}", "arch": arch, "init": init, "data": "fashion_mnist", "seed": seed,
              "variant": ",".join(v for v in (variant, f"optim.lr={lr}") if v)}  # fmt: skip
    summary = {"target_metric": metric, metric.replace("/", "_") + "_final": values[-1] if values else None}
    record = {"labels": labels, "status": status, "config": {"optim": {"lr": lr}, "data": data}, "summary": summary}
    (d / "run.json").write_text(json.dumps(record))
    (d / "metrics.jsonl").write_text("".join(json.dumps({"step": i, metric: v}) + "\n" for i, v in enumerate(values)))


@pytest.fixture()
def runs(tmp_path):
    r = tmp_path / "runs"
    # kaiming: 2x is best on one seed but diverged on the other -> 1x (the best clean point)
    for seed, (a, b) in zip((100, 101), ((0.80, 0.82), (0.84, 0.86))):
        _run(r, "mlp", "kaiming", 0.005, seed, [0.5, a])
        _run(r, "mlp", "kaiming", 0.01, seed, [0.5, b])
    _run(r, "mlp", "kaiming", 0.02, 100, [0.5, 0.95])
    _run(r, "mlp", "kaiming", 0.02, 101, [0.5], status="diverged")
    # emergence: a three-way tie -> the recipe LR (the grid's middle)
    for lr in (0.005, 0.01, 0.02):
        for seed in (100, 101):
            _run(r, "mlp", "emergence", lr, seed, [0.7])
    # warm-up control: 2x wins; 0.5x collapsed to chance on one seed (but would otherwise win)
    for seed in (100, 101):
        _run(r, "mlp", "kaiming", 0.005, seed, [0.99 if seed == 100 else 0.105], variant="schedule.warmup_epochs=1")
        _run(r, "mlp", "kaiming", 0.01, seed, [0.80], variant="schedule.warmup_epochs=1")
        _run(r, "mlp", "kaiming", 0.02, seed, [0.83], variant="schedule.warmup_epochs=1")
    # translation, criterion val/nll (lower is better): 0.5x wins
    for lr, nll in ((0.0015, 3.0), (0.003, 3.2), (0.006, 3.5)):
        _run(r, "tr", "xavier", lr, 100, [6.0, nll], data=TR, metric="val/nll", arch="transformer_tiny")
    return r


def _table(runs, tmp_path, *extra):
    out = tmp_path / "results"
    args = ["select", "--runs", str(runs), "--out", str(out), "--criterion", "tr=val/nll:min", *extra]
    assert select_lr.main(args) == 0
    return out


def test_selection_picks_best_clean_point(runs, tmp_path, capsys):
    out = _table(runs, tmp_path)
    capsys.readouterr()
    mlp = ["--experiment", "mlp", "--arch", "mlp", "--init"]
    cases = [
        ([*mlp, "kaiming"], "0.01"),
        ([*mlp, "emergence"], "0.01"),
        ([*mlp, "kaiming", "--variant", "schedule.warmup_epochs=1.0"], "0.02"),
        (["--experiment", "tr", "--arch", "transformer_tiny", "--init", "xavier"], "0.0015"),
    ]
    for args, want in cases:
        assert select_lr.main(["lookup", "--table", str(out / "lr_selection.csv"), *args]) == 0
        assert capsys.readouterr().out.strip() == want, args
    md = (out / "lr_selection.md").read_text()
    assert "**0.01: 0.84**" in md  # kaiming: mean of 0.82 and 0.86
    assert "0.02: ✗ (1 div, 0 coll)" in md and "0.005: ✗ (0 div, 1 coll)" in md


def test_lookup_errors_are_clear(runs, tmp_path, capsys):
    out = _table(runs, tmp_path)
    table = str(out / "lr_selection.csv")
    assert select_lr.main(["lookup", "--table", table, "--experiment", "mlp", "--arch", "mlp", "--init", "xavier"]) == 2
    assert "no single selected LR" in capsys.readouterr().err
    missing = str(tmp_path / "none.csv")
    assert select_lr.main(["lookup", "--table", missing, "--experiment", "mlp", "--arch", "mlp", "--init", "x"]) == 2
    assert "run experiments/lr_select.sh first" in capsys.readouterr().err
    assert select_lr.main(["select", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1


def test_variant_key_normalizes_what_hydra_may_spell_differently():
    a = select_lr.variant_key(["init.inverse=True,optim.layerwise_lr={max_factor:2},optim.lr=0.1"])
    b = select_lr.variant_key(["optim.layerwise_lr={max_factor: 2}", "init.inverse=true", "name=lr_x"])
    assert a == b == 'init.inverse=true,optim.layerwise_lr={"max_factor": 2}'
    assert select_lr.variant_key([]) == ""


def test_an_incomplete_grid_chooses_nothing(tmp_path, capsys):
    r = tmp_path / "runs"
    _run(r, "mlp", "xavier", 0.005, 100, [0.8])
    _run(r, "mlp", "xavier", 0.01, 100, [0.5], status="running")  # interrupted
    _run(r, "mlp", "xavier", 0.02, 100, [0.7])
    _run(r, "mlp", "kaiming", 0.005, 100, [0.8])  # the other two points never ran
    out = tmp_path / "results"
    assert select_lr.main(["select", "--runs", str(r), "--out", str(out)]) == 0
    assert "| incomplete |" in (out / "lr_selection.md").read_text()
    for init in ("xavier", "kaiming"):
        args = ["lookup", "--table", str(out / "lr_selection.csv"), "--experiment", "mlp", "--arch", "mlp"]
        assert select_lr.main([*args, "--init", init]) == 2
        assert "is incomplete" in capsys.readouterr().err


def _reported(root, init, lr, seed, variant=""):
    d = root / "mlp" / f"{variant or 'default'},init={init},optim.lr={lr}" / f"seed={seed}"
    d.mkdir(parents=True)
    labels = {"experiment": "mlp", "arch": "mlp", "init": init, "data": "fashion_mnist", "seed": seed,
              "variant": ",".join(v for v in (variant, f"optim.lr={lr}") if v)}  # fmt: skip
    (d / "run.json").write_text(json.dumps({"labels": labels, "status": "completed", "config": {"optim": {"lr": lr}}}))
    return d


def test_supersede_moves_only_runs_at_an_unchosen_lr(runs, tmp_path, capsys):
    out = _table(runs, tmp_path)  # kaiming -> 0.01, emergence -> 0.01, warm-up control -> 0.02
    reported = tmp_path / "reported"
    old = _reported(reported, "kaiming", 0.02, 0)  # an earlier selection's LR
    kept = [_reported(reported, "kaiming", 0.01, 0), _reported(reported, "emergence", 0.01, 0),
            _reported(reported, "kaiming", 0.02, 0, variant="schedule.warmup_epochs=1"),
            _reported(reported, "emergence", 0.01, 0, variant="init.max_factor=4")]  # ablation: the cell's LR
    ablation_old = _reported(reported, "emergence", 0.02, 1, variant="init.turning_point=2")
    table = str(out / "lr_selection.csv")
    aside = tmp_path / "aside"
    assert select_lr.main(["supersede", "--runs", str(reported), "--table", table, "--to", str(aside),
                           "--dry-run"]) == 0  # fmt: skip
    assert old.is_dir() and "2 superseded run dir(s) to move" in capsys.readouterr().out
    assert select_lr.main(["supersede", "--runs", str(reported), "--table", table, "--to", str(aside)]) == 0
    assert not old.exists() and not ablation_old.exists() and all(d.is_dir() for d in kept)
    assert (aside / old.relative_to(reported) / "run.json").is_file()
    assert select_lr.main(["supersede", "--runs", str(reported), "--table", table, "--to", str(reported / "x")]) == 2
    assert select_lr.main(["supersede", "--runs", str(reported), "--table", str(tmp_path / "no.csv"), "--to",
                           str(aside)]) == 2  # fmt: skip
