"""Tests of the per-layer diagnostics (emergence/metrics/layer_stats.py)."""

import math

import pytest
import torch

from emergence.metrics.layer_stats import LayerTracker, grad_norms


def test_layer_tracker_rel_update_and_dist_init_match_hand_computed():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||W_0|| = 5
    b = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    tracker = LayerTracker([("fc1", w), ("fc2.weight", b)])
    with torch.no_grad():
        w.copy_(torch.tensor([[6.0, 8.0]]))  # W_1 - W_0 = [3, 4]
    s1 = tracker.stats(step=10)
    assert s1["layer/fc1/rel_update"] == pytest.approx(5.0 / 5.0)  # ||[3, 4]|| / ||W_0||
    assert s1["layer/fc1/dist_init"] == pytest.approx(5.0 / 5.0)
    assert s1["layer/fc1/weight_norm"] == pytest.approx(10.0)
    assert s1["layer/fc2.weight/rel_update"] == 0.0 and s1["layer/fc2.weight/dist_init"] == 0.0
    assert s1["layer/interval_steps"] == 10.0
    with torch.no_grad():
        w.add_(torch.tensor([[0.0, 5.0]]))  # W_2 = [6, 13]
    s2 = tracker.stats(step=25)
    assert s2["layer/fc1/rel_update"] == pytest.approx(5.0 / 10.0)  # ||[0, 5]|| / ||W_1||
    assert s2["layer/fc1/dist_init"] == pytest.approx(math.sqrt(3**2 + 9**2) / 5.0)  # ||[3, 9]|| / ||W_0||
    assert s2["layer/fc1/weight_norm"] == pytest.approx(math.sqrt(6**2 + 13**2))
    assert s2["layer/interval_steps"] == 15.0
    s3 = tracker.stats(step=26)  # no change since the last call
    assert s3["layer/fc1/rel_update"] == 0.0
    assert s3["layer/fc1/dist_init"] == pytest.approx(s2["layer/fc1/dist_init"])


def test_layer_tracker_reports_grad_norm_when_grad_exists():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    tracker = LayerTracker({"fc": w})
    assert "layer/fc/grad_norm" not in tracker.stats(step=0)
    (w * torch.tensor([[0.6, 0.8]])).sum().backward()  # grad = [0.6, 0.8], norm 1
    assert tracker.stats(step=1)["layer/fc/grad_norm"] == pytest.approx(1.0)


def test_grad_norms_match_manual_and_skip_missing_grads():
    a = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(3))
    a.grad = torch.tensor([[1.0, 2.0], [2.0, 4.0]])  # norm sqrt(1 + 4 + 4 + 16) = 5
    assert grad_norms([("a", a), ("b", b)]) == {"layer/a/grad_norm": pytest.approx(5.0)}


def test_layer_tracker_zero_reference_weight_gives_nan():
    w = torch.nn.Parameter(torch.zeros(3))
    tracker = LayerTracker([("z", w)])
    with torch.no_grad():
        w.fill_(1.0)
    s = tracker.stats(step=1)
    assert math.isnan(s["layer/z/rel_update"]) and math.isnan(s["layer/z/dist_init"])
    with torch.no_grad():
        w.fill_(2.0)
    assert tracker.stats(step=2)["layer/z/rel_update"] == pytest.approx(1.0)  # ||[1,1,1]|| / ||[1,1,1]||


def test_layer_tracker_rejects_duplicate_names():
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError):
        LayerTracker([("x", w), ("x", w)])
