"""The runner end to end on synthetic data: training works, runs are reproducible, reruns skip, bad runs are caught."""

from __future__ import annotations

import json

import pytest

from emergence.config import ConfigError
from emergence.log import read_metrics
from emergence.tasks.classification import ClassificationTask
from emergence.train import run

TIMING = ("time/", "wall_s")


def untimed(records):
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in records]


def test_a_few_steps_lower_the_loss(make_cfg, tmp_path):
    record = run(make_cfg("arch=mlp", "init=kaiming", "trainer.epochs=2", "optim.lr=0.05"))
    assert record["status"] == "completed"
    history = read_metrics(tmp_path / "run" / "metrics.jsonl")
    val_loss = [r["val/loss"] for r in history if "val/loss" in r]
    assert val_loss[-1] < 0.7 * val_loss[0]
    assert record["summary"]["val_acc_final"] > record["summary"]["val_acc_init"] + 0.3
    for key in (
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "time/wall_s",
        "time/step_ms",
        "epoch",
        "samples_seen",
    ):
        assert key in history[-2], key  # the last epoch record (the very last one is the test evaluation)
    assert history[0]["time/init_s"] >= 0 and "init/net.1/std" in history[0]


def test_run_json_holds_config_versions_and_summary(make_cfg, tmp_path):
    run(make_cfg("arch=mlp", "init=emergence", "trainer.target=0.3"))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["config"]["init"]["alpha"] is None  # from init.max_factor: 2 ** (2 / (L - 1))
    assert {"torch", "hydra-core", "python"} <= set(info["versions"])
    assert "commit" in info["git"] and info["device"]["type"] == "cpu"
    assert info["labels"] == {**info["labels"], "arch": "mlp", "init": "emergence", "data": "synthetic", "seed": 0}
    s = info["summary"]
    assert s["val_acc_epoch1"] is not None and s["val_acc_best"] >= s["val_acc_final"]
    assert s["steps_to_target"] is not None and s["wall_s_to_target"] >= info["init_s"]
    assert info["alpha_max_factor"] == pytest.approx(2.0)  # 3 weight layers: e = -1, 0, 1, so alpha = 2
    assert info["alpha"] == pytest.approx(2.0) and info["n_units"] == 3


def test_same_seed_same_metrics(make_cfg):
    a = run(make_cfg("arch=mlp", "init=emergence", "trainer.eval_every_steps=5", run="a"))
    b = run(make_cfg("arch=mlp", "init=emergence", "trainer.eval_every_steps=5", run="b"))
    ma = untimed(read_metrics(a["config"]["run_dir"] + "/metrics.jsonl"))
    mb = untimed(read_metrics(b["config"]["run_dir"] + "/metrics.jsonl"))
    assert ma == mb and len(ma) > 3


def test_another_seed_changes_the_metrics(make_cfg):
    a = run(make_cfg("arch=mlp", "init=kaiming", run="a"))
    b = run(make_cfg("arch=mlp", "init=kaiming", "seed=1", run="b"))
    assert untimed(read_metrics(a["config"]["run_dir"] + "/metrics.jsonl")) != untimed(
        read_metrics(b["config"]["run_dir"] + "/metrics.jsonl")
    )


def test_another_init_sees_the_same_data_order(make_cfg, monkeypatch):
    seen = {}
    original = ClassificationTask.train_batches

    def recording(self, batch_size, generator, start=0):
        for x, y in original(self, batch_size, generator, start):
            seen.setdefault(self._tag, []).append(y.clone())
            yield x, y

    monkeypatch.setattr(ClassificationTask, "train_batches", recording)
    for init in ("xavier", "kaiming", "torch_default"):
        monkeypatch.setattr(ClassificationTask, "_tag", init, raising=False)
        run(make_cfg("arch=mlp", f"init={init}", run=init))
    assert len(seen["xavier"]) > 5
    for init in ("kaiming", "torch_default"):
        assert all((a == b).all() for a, b in zip(seen["xavier"], seen[init]))


def test_completed_run_is_skipped_and_force_reruns(make_cfg, tmp_path):
    cfg = make_cfg("arch=mlp", "init=xavier")
    run(cfg)
    metrics = tmp_path / "run" / "metrics.jsonl"
    before = metrics.read_bytes()
    again = run(cfg)
    assert again["status"] == "completed" and metrics.read_bytes() == before
    cfg.force = True
    run(cfg)
    assert (tmp_path / "run" / "metrics.jsonl.attempt1").read_bytes() == before  # the old file is kept


def test_run_dir_of_another_configuration_is_refused(make_cfg, tmp_path):
    run(make_cfg("arch=mlp", "init=xavier"))
    before = (tmp_path / "run" / "run.json").read_bytes()
    with pytest.raises(ConfigError, match="different configuration"):
        run(make_cfg("arch=mlp", "init=xavier", "optim.lr=0.5"))
    assert (tmp_path / "run" / "run.json").read_bytes() == before


def test_divergence_stops_cleanly(make_cfg, tmp_path):
    record = run(make_cfg("arch=mlp", "init=kaiming", "optim.lr=1e6", "trainer.epochs=3"))
    assert record["status"] == "diverged"
    assert record["diverged_at"] is not None and record["diverged_at"] < 3 * 24
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "diverged" and info["summary"]["val_acc_final"] is None


def test_warmup_and_cosine_schedules_shape_the_lr():
    from emergence.optim import lr_factor

    assert [round(lr_factor(s, 10, 4, "constant", 0.0), 3) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor(0, 10, 0, "cosine", 0.0) == 1.0
    assert lr_factor(10, 10, 0, "cosine", 0.0) == pytest.approx(0.0)
    assert lr_factor(5, 10, 0, "linear", 0.1) == pytest.approx(0.55)


def test_adam_and_batchnorm_mlp_train(make_cfg):
    record = run(make_cfg("arch=mlp_bn", "init=emergence", "optim=adam", "optim.lr=0.005", "trainer.epochs=3"))
    assert record["status"] == "completed" and record["summary"]["val_acc_final"] > 0.5


def test_emergence_and_layer_diagnostics_are_logged(make_cfg, tmp_path):
    run(make_cfg("arch=mlp", "init=emergence", "init.alpha=1.5", "arch.depth=4", "diagnostics.every_steps=5"))
    history = read_metrics(tmp_path / "run" / "metrics.jsonl")
    evals = [r for r in history if "val/acc" in r]
    assert evals[0]["step"] == 0 and len(evals) == 2  # the init itself and the end of the epoch
    for r in evals:
        assert r["emergence/log10_E"] > 0 and r["emergence/E_rel"] > 0
        assert 0 <= r["emergence/active_frac/net.2"] <= 1 and "emergence/active_frac/net.8" in r
    layer = [r for r in history if "layer/net.1/grad_norm" in r]
    assert [r["step"] for r in layer] == [5, 10, 15, 20, 25]
    assert all(r["layer/net.1/rel_update"] > 0 and r["layer/net.9/dist_init"] > 0 for r in layer)
    # the first layer moves relatively more than the last under the forward ramp
    # (docs/method.md#what-the-rescale-does: lr * alpha^(-2e))
    assert layer[-1]["layer/net.1/dist_init"] > layer[-1]["layer/net.9/dist_init"]


def test_measure_can_be_switched_off(make_cfg, tmp_path):
    run(make_cfg("arch=mlp", "init=kaiming", "measure.enabled=false", "diagnostics.every_steps=0"))
    history = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert not any(k.startswith(("emergence/", "layer/")) for r in history for k in r)
