"""W&B without a network: the init call's group/job_type/flat config, and the saved workspace's panel definitions."""

from __future__ import annotations

import types

import pytest

from emergence.train import run
from scripts import wandb_workspace as wsp


def test_wandb_run_is_grouped_by_experiment_with_init_as_job_type(make_cfg, monkeypatch):
    import wandb

    calls = []

    def fake_init(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(id="abc123", log=lambda *a, **k: None, finish=lambda **k: None)

    monkeypatch.setattr(wandb, "init", fake_init)
    run(make_cfg("arch=mlp", "init=emergence", "init.alpha=1.5", "seed=3", "logger=wandb", "logger.mode=offline",
                 "name=mlp_probe"))  # fmt: skip
    (kw,) = calls
    assert kw["group"] == "mlp_probe" and kw["job_type"] == "emergence" and kw["name"] == "mlp-emergence-s3"
    cfg = kw["config"]
    assert (cfg["init"], cfg["arch"], cfg["alpha"], cfg["seed"], cfg["experiment"]) == (
        "emergence", "mlp", 1.5, 3, "mlp_probe")  # fmt: skip
    assert cfg["inverse"] is False and cfg["dataset"] == "synthetic"
    assert cfg["init_cfg"]["_target_"].endswith("Emergence") and cfg["arch_cfg"]["depth"] == 2  # nothing lost
    assert cfg["trainer"]["epochs"] == 1 and set(cfg["git"]) == {"commit", "dirty"}


def test_workspace_panels_are_defined_without_network(monkeypatch):
    import wandb_workspaces.workspaces as ws

    w = wsp.build_workspace("mlp_fashion_mnist", "me", "emergence", metric="val/acc", target=0.85)
    panels = {p.title: p for s in w.sections for p in s.panels}
    assert set(panels) == {
        "val/acc per init", "val/acc in the first epoch", "time to target: val/acc against seconds (target 0.85)",
        "E at init (step 0) and during training", "gradient norm per layer", "relative update |dW|/|W| per layer",
    }  # fmt: skip
    for title in ("val/acc per init", "val/acc in the first epoch", "E at init (step 0) and during training"):
        p = panels[title]
        assert p.groupby == "init" and p.groupby_aggfunc == "mean" and p.groupby_rangefunc == "stderr"
        assert p.x == "epoch"
    assert panels["val/acc in the first epoch"].range_x == (0.0, 1.0)
    assert panels["time to target: val/acc against seconds (target 0.85)"].x == "time/wall_s"
    assert panels["E at init (step 0) and during training"].y == ["emergence/log10_E"]
    assert panels["gradient norm per layer"].metric_regex == "layer/.*/grad_norm" and panels[
        "gradient norm per layer"].log_y  # fmt: skip
    model = w._to_model().model_dump(by_alias=True, exclude_none=True)  # the JSON the W&B API would receive
    text = str(model)
    assert "init.value" in text and "'group'" in text and "mlp_fashion_mnist" in text

    def no_save(self):
        raise AssertionError("offline mode must not save")

    monkeypatch.setattr(ws.Workspace, "save", no_save)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wsp.main(["--experiment", "mlp_fashion_mnist", "--mode", "offline"]) == 0


def test_workspace_plan_is_printed_offline(capsys):
    assert wsp.main(["--experiment", "translation_ding", "--metric", "val/bleu", "--mode", "offline"]) == 0
    out = capsys.readouterr().out
    assert "would create" in out and "val/bleu per init" in out and "group == 'translation_ding'" in out


@pytest.mark.parametrize("bad", [[], ["--experiment", "x", "--mode", "sideways"]])
def test_workspace_bad_arguments_exit_2(bad):
    with pytest.raises(SystemExit) as exc:
        wsp.main(bad)
    assert exc.value.code == 2
