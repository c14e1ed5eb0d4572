"""MetaInit (emergence/init/metainit.py): the gradient quotient against a hand computation on a quadratic loss (where
H = X^T X / n is known), the quotient falling under MetaInit on an MLP from a badly scaled init, directions kept, the
cost counted, and the config through the runner."""

from __future__ import annotations

import json
import math
from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from emergence.data.images import read_synthetic
from emergence.init.kaiming import Kaiming
from emergence.init.metainit import MetaInit, gradient_quotient
from emergence.models.mlp import MLP
from emergence.tasks.classification import ClassificationTask
from emergence.train import run
from tests.conftest import compose_train

CPU = torch.device("cpu")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def task():
    reader = {"n_train": 600, "n_test": 50, "num_classes": 10, "shape": [1, 8, 8]}
    return ClassificationTask("synthetic", val_size=100, reader=partial(read_synthetic, **reader)).setup(CPU)


def test_gradient_quotient_matches_the_hand_computation_on_a_quadratic():
    g = gen(1)
    x, y = torch.randn(20, 5, generator=g, dtype=torch.float64), torch.randn(20, generator=g, dtype=torch.float64)
    w = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    loss = ((x @ w - y) ** 2).mean() / 2
    gq = gradient_quotient(loss, [w], eps=1e-5)
    with torch.no_grad():  # by hand: g = X^T (Xw - y) / n, H = X^T X / n
        grad = x.T @ (x @ w - y) / 20
        hg = (x.T @ x / 20) @ grad
        sign = torch.where(grad >= 0, 1.0, -1.0).double()
        expected = ((grad - hg) / (grad + 1e-5 * sign) - 1).abs().mean()
    assert float(gq.detach()) == pytest.approx(float(expected), rel=1e-10)


class Scaled:
    """Kaiming, then every Linear weight times ``factor``: a badly scaled start."""

    def __init__(self, factor):
        self.factor = factor

    @torch.no_grad()
    def __call__(self, model, example=(), generator=None):
        stats = Kaiming()(model, example, generator)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(self.factor)
        return stats


def quotient_on(model, batch) -> float:
    model.eval()
    return float(gradient_quotient(batch.loss(model(*batch.inputs)), list(model.parameters())).detach())


@pytest.mark.parametrize("factor", [0.3, 3.0])
def test_metainit_lowers_the_gradient_quotient(task, factor):
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 10, depth=3, width=64)
    start = MLP((1, 8, 8), 10, depth=3, width=64)
    Scaled(factor)(start, (), gen(2))
    held_out = next(task.init_batches(128, gen(99)))  # not one of MetaInit's batches
    init = MetaInit(Scaled(factor), iterations=40, batch_size=64)
    stats = init(model, task.example_inputs(), gen(2), batches=task.init_batches(64, gen(3)))
    before, after = quotient_on(start, held_out), quotient_on(model, held_out)
    assert after < 0.8 * before, (before, after)
    gq = [h["gq"] for h in init.history]
    assert sum(gq[-5:]) < sum(gq[:5])
    assert stats["metainit/gq_first"] == gq[0] and stats["metainit/gq_last"] == gq[-1]
    # only the norms moved: every weight is a positive multiple of the base init's, biases untouched
    for (name, p), (_, q) in zip(model.named_parameters(), start.named_parameters()):
        a, b = p.detach().double().flatten(), q.detach().double().flatten()
        if p.dim() >= 2:
            assert float(a @ b / (a.norm() * b.norm())) == pytest.approx(1.0, abs=1e-6), name
            assert stats[f"metainit/{name}/norm_ratio"] == pytest.approx(float(a.norm() / b.norm()), rel=1e-5)
        else:
            assert torch.equal(a, b), name


def test_cost_is_counted_and_the_same_seed_gives_the_same_weights(task):
    out = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MLP((1, 8, 8), 10, depth=2, width=16)
        init = MetaInit(Kaiming(), iterations=4, batch_size=32)
        stats = init(model, task.example_inputs(), gen(1), batches=task.init_batches(32, gen(2)))
        out.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert stats["metainit/steps"] == 4 == len(init.history) == stats["metainit/extra_forward"]
    assert stats["metainit/extra_backward"] == 12 and stats["metainit/time_s"] > 0
    assert math.isfinite(stats["metainit/gq_last"])
    assert torch.equal(out[0], out[1])


def test_needs_data_and_rejects_bad_values():
    with pytest.raises(ValueError, match="needs data"):
        MetaInit(Kaiming())(nn.Linear(2, 2), (torch.zeros(1, 2),), gen())
    for kwargs, key in (({"iterations": 0}, "init.iterations"), ({"momentum": 1.0}, "init.momentum")):
        with pytest.raises(ValueError, match=key):
            MetaInit(Kaiming(), **kwargs)


def test_config_composes_and_runs_through_the_runner(tmp_path):
    cfg = compose_train(["arch=mlp", "init=metainit", "data=synthetic"], tmp_path)
    init = instantiate(cfg.init)
    assert isinstance(init, MetaInit) and init.iterations == 500 and init.lr == 0.1 and init.momentum == 0.9
    over = ["arch=mlp", "init=metainit", "data=synthetic", "debug=smoke", "arch.depth=2", "arch.width=32"]
    record = run(compose_train([*over, "init.iterations=3", "init.batch_size=32"], tmp_path))
    assert record["status"] == "completed"
    history = (tmp_path / "run" / "init_history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [0, 1, 2]
