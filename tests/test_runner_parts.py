"""The runner's parts: the loop state and its saved form, checkpoints of the earlier code, the shared model builder,
the per-step gradient norm, and the one rule that names summary keys."""

from __future__ import annotations

import json
import math

import pytest
import torch

from emergence import checkpoint, loop
from emergence.components import build, build_initialized_model
from emergence.log import read_metrics
from emergence.loop import LoopState, total_grad_norm
from emergence.runinfo import final_test_metrics, summary_key
from emergence.train import run
from tests.test_faults import PREEMPTIBLE, interrupted

# What a checkpoint held before the loop state became a dataclass (read from a checkpoint.pt that the code of
# d318e90 wrote): the top-level keys, and the ``loop`` entry's keys with the types of their values mid-run.
CHECKPOINT_KEYS = ["data_identity", "fingerprint", "init_s", "init_stats", "layer_tracker", "loop", "metrics",
                   "metrics_bytes", "model", "optimizer", "rng", "schedule", "wandb_id"]  # fmt: skip
LOOP_TYPES = {"epoch": int, "batch": int, "step": int, "samples": int, "wall": float, "status": str,
              "diverged_at": type(None), "reason": type(None), "loss_sum": float, "correct": int, "seen": int,
              "interval_steps": int, "interval_time": float, "history": list, "target_hit": type(None),
              "data_rng": torch.Tensor}  # fmt: skip


def untimed(path):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(path)]


def test_loop_state_round_trip_through_a_saved_file(tmp_path):
    state = LoopState(epoch=3, batch=5, step=61, samples=3904, wall=1.25, status="running", loss_sum=12.5,
                      correct=40, seen=320, interval_steps=7, interval_time=0.5,
                      history=[{"epoch": 0, "step": 0, "val/acc": 0.1}], target_hit={"step": 40, "epoch": 1.5},
                      data_rng=torch.Generator().manual_seed(7).get_state())  # fmt: skip
    torch.save({"loop": state.state_dict()}, tmp_path / "s.pt")
    saved = torch.load(tmp_path / "s.pt", weights_only=True)["loop"]
    assert type(saved) is dict and sorted(saved) == sorted(LOOP_TYPES)
    again = LoopState()
    again.load_state_dict(saved)
    assert torch.equal(again.data_rng, state.data_rng)
    assert {**again.state_dict(), "data_rng": None} == {**state.state_dict(), "data_rng": None}
    assert again.state_dict() is not state.state_dict() and again.history == state.history


@pytest.mark.parametrize("change", ["missing", "unknown"])
def test_loop_state_refuses_a_saved_form_with_other_keys(change):
    saved = LoopState().state_dict()
    if change == "missing":
        del saved["data_rng"]
    else:
        saved["steps_per_epoch"] = 10
    with pytest.raises(ValueError, match="data_rng" if change == "missing" else "steps_per_epoch"):
        LoopState().load_state_dict(saved)


def test_checkpoint_keeps_the_earlier_codes_form_and_resumes_exactly(make_cfg, tmp_path, monkeypatch):
    """A checkpoint written by the code before the dataclass is a plain dict with these keys and types (checked once
    by hand: a run interrupted under d318e90 resumed under this code to identical metrics); this one must be too, so
    either code resumes the other's checkpoints."""
    reference = run(make_cfg(*PREEMPTIBLE, run="reference"))
    cfg = interrupted(make_cfg, monkeypatch, name="interrupted")
    saved = checkpoint.load(tmp_path / "interrupted" / "checkpoint.pt")
    assert sorted(saved) == CHECKPOINT_KEYS
    assert type(saved["loop"]) is dict and {k: type(v) for k, v in saved["loop"].items()} == LOOP_TYPES
    assert saved["loop"]["step"] == 37 and saved["loop"]["batch"] == 37 - 28
    # the earlier code's form, rebuilt as a fresh dict of plain values, resumes to the uninterrupted run's records
    plain = {k: (list(v) if isinstance(v, list) else v) for k, v in saved["loop"].items()}
    checkpoint.save_atomic({**saved, "loop": plain}, tmp_path / "interrupted" / "checkpoint.pt")
    resumed = run(cfg)
    assert resumed["status"] == "completed"
    assert untimed(tmp_path / "interrupted" / "metrics.jsonl") == untimed(tmp_path / "reference" / "metrics.jsonl")
    assert resumed["summary"]["val_acc_final"] == reference["summary"]["val_acc_final"]


def test_a_checkpoint_with_a_foreign_loop_state_is_refused_and_left_alone(make_cfg, tmp_path, monkeypatch):
    cfg = interrupted(make_cfg, monkeypatch)
    path = tmp_path / "run" / "checkpoint.pt"
    saved = checkpoint.load(path)
    checkpoint.save_atomic({**saved, "loop": {**saved["loop"], "extra": 1}}, path)
    before = path.read_bytes(), (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(checkpoint.CheckpointError, match="unknown keys \\['extra'\\].*force=true"):
        run(cfg)
    assert (path.read_bytes(), (tmp_path / "run" / "metrics.jsonl").read_bytes()) == before


@pytest.mark.parametrize("init", ["emergence", "kaiming", "lsuv"])
def test_build_initialized_model_gives_the_runners_weights(make_cfg, monkeypatch, init):
    """The scripts' model (scripts/emergence_vs_alpha.py) is the runner's at step 0, data-dependent inits included."""
    cfg = make_cfg("arch=mlp", f"init={init}", "trainer.max_steps=1")
    seen = {}
    original = loop.train

    def capture(trainer, model, *args):
        seen.update({k: v.clone() for k, v in model.state_dict().items()})
        return original(trainer, model, *args)

    monkeypatch.setattr(loop, "train", capture)
    record = run(cfg)
    task = build("data", cfg.data).setup(torch.device("cpu"))
    built = build_initialized_model(cfg, int(cfg.seed), task)
    weights = built.model.state_dict()
    assert seen and sorted(seen) == sorted(weights)
    assert all(torch.equal(seen[k], weights[k]) for k in weights)
    other = build_initialized_model(cfg, int(cfg.seed) + 1, task).model.state_dict()
    assert not all(torch.equal(other[k], weights[k]) for k in weights)  # the seed matters: the check can fail
    logged = read_metrics(cfg.run_dir + "/metrics.jsonl")[0]
    untimed_stats = {k: v for k, v in built.stats.items() if not k.endswith("time_s")}
    assert untimed_stats and {k: logged[f"init/{k}"] for k in untimed_stats} == json.loads(json.dumps(untimed_stats))
    assert record["status"] == "completed"


def _grads(shapes, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(s, generator=g) for s in shapes]


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1.0, 1e6, 1e19, 1e25])
def test_total_grad_norm_is_torchs_value_bit_for_bit(scale):
    shapes = [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,), (3, 3, 3, 16)]
    grads = _grads(shapes, scale)
    expected = torch.nn.utils.get_total_norm(grads)
    assert torch.equal(total_grad_norm(grads, uniform=True), expected)
    assert torch.equal(total_grad_norm(grads, uniform=False), expected)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_total_grad_norm_keeps_non_finite_values(bad):
    grads = _grads([(64, 32), (32,)], 1.0)
    grads[1][3] = bad
    expected, got = torch.nn.utils.get_total_norm(grads), total_grad_norm(grads, uniform=True)
    assert not math.isfinite(got.item())
    assert (got.isnan().item(), got.isinf().item()) == (expected.isnan().item(), expected.isinf().item())


def test_total_grad_norm_of_mixed_dtypes_and_no_gradients_is_torchs():
    mixed = [torch.ones(4), torch.ones(3, dtype=torch.float64)]
    assert torch.equal(total_grad_norm(mixed, uniform=False), torch.nn.utils.get_total_norm(mixed))
    assert torch.equal(total_grad_norm([], uniform=True), torch.nn.utils.get_total_norm([]))


def test_summary_keys_and_their_inverse():
    assert summary_key("val/acc", "best") == "val_acc_best" and summary_key("test/bleu", "final") == "test_bleu_final"
    summary = {summary_key("val/acc", "final"): 0.5, summary_key("test/acc", "final"): 0.4,
               summary_key("test/best_val_bleu", "final"): 3.0, summary_key("test/loss", "final"): None}  # fmt: skip
    assert final_test_metrics(summary) == ["acc", "best_val_bleu"]  # numbers only; val/... is not a test metric
    assert final_test_metrics({}) == []
