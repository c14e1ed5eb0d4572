"""LSUV (emergence/init/lsuv.py): after it, every Conv/Linear output has unit variance on the batch within the paper's
tolerance, recomputed independently (explicit matrix products for an MLP, one hooked pass for conv nets); the factor
of each layer is a scalar on the orthogonal weights; the first layer's factor matches a hand computation."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from emergence.data.images import read_synthetic
from emergence.init.lsuv import LSUV
from emergence.init.orthogonal import Orthogonal
from emergence.models.cnn import SmallCNN
from emergence.models.mlp import MLP
from emergence.models.resnet import ResNet
from emergence.tasks.classification import ClassificationTask
from emergence.train import run
from tests.conftest import compose_train

CPU = torch.device("cpu")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def task():
    reader = {"n_train": 400, "n_test": 50, "num_classes": 10, "shape": [1, 8, 8]}
    return ClassificationTask("synthetic", val_size=50, reader=partial(read_synthetic, **reader)).setup(CPU)


def one_batch(task, n=128):
    return next(task.init_batches(n, gen(5)))


def test_mlp_layer_variances_by_explicit_matrix_products(task):
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 10, depth=5, width=64)
    batch = one_batch(task)
    stats = LSUV(Orthogonal())(model, task.example_inputs(), gen(), batches=iter([batch]))
    h = batch.raw[0].flatten(1).double()
    model.requires_grad_(False)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for i, m in enumerate(linears):
        z = h @ m.weight.double().T + m.bias.double()
        assert abs(float(z.var()) - 1) < 0.1, (i, float(z.var()))
        h = torch.relu(z)
    assert stats["lsuv/layers"] == len(linears) and stats["lsuv/not_converged"] == ""
    assert all(stats[f"lsuv/net.{2 * i + 1}/iterations"] <= 10 for i in range(len(linears)))


def test_factor_is_a_scalar_on_the_orthogonal_weights_and_matches_a_hand_computation(task):
    torch.manual_seed(0)
    a, b = MLP((1, 8, 8), 10, depth=3, width=64), MLP((1, 8, 8), 10, depth=3, width=64)
    batch = one_batch(task)
    Orthogonal()(a, (), gen(1))
    stats = LSUV(Orthogonal())(b, task.example_inputs(), gen(1), batches=iter([batch]))
    w0 = a.net[1].weight.detach().double()
    by_hand = 1 / math.sqrt(float((batch.raw[0].flatten(1).double() @ w0.T).var()))
    assert stats["lsuv/net.1/scale"] == pytest.approx(by_hand, rel=1e-6)
    assert stats["lsuv/net.1/iterations"] == 1  # zero bias: one division is exact
    for name, m in a.named_modules():
        if isinstance(m, nn.Linear):
            ratio = b.get_submodule(name).weight.double() / m.weight.double()
            assert torch.allclose(ratio, torch.full_like(ratio, stats[f"lsuv/{name}/scale"]), rtol=1e-5)


@pytest.mark.parametrize(
    "make",
    [lambda: SmallCNN((1, 8, 8), 10, norm="batch"), lambda: ResNet((1, 8, 8), 10, depth=8, norm="none", width=0.5)],
)
def test_conv_nets_every_layer_within_tolerance_in_one_pass(task, make):
    torch.manual_seed(0)
    model = make()
    batch = one_batch(task)
    LSUV(Orthogonal())(model, task.example_inputs(), gen(), batches=iter([batch]))
    variances = {}

    def record(name):
        def hook(module, args, out):  # returns None: the output is left alone
            variances.setdefault(name, float(out.double().var()))

        return hook

    hooks = [
        m.register_forward_hook(record(n)) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    assert model.training  # flags restored
    model.eval()
    with torch.no_grad():
        model(*batch.inputs)
    for h in hooks:
        h.remove()
    assert variances and all(abs(v - 1) < 0.1 for v in variances.values()), variances


def test_max_iterations_bounds_the_passes_and_non_convergence_is_reported(task):
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 10, depth=2, width=32)
    stats = LSUV(Orthogonal(), tolerance=1e-12, max_iterations=2)(
        model, task.example_inputs(), gen(), batches=iter([one_batch(task)])
    )
    assert all(stats[f"lsuv/{n}/iterations"] <= 2 for n in ("net.1", "net.3", "net.5"))
    assert stats["lsuv/steps"] <= 3 * 3  # per layer: one measurement plus one per rescaling


def test_needs_data_and_rejects_bad_values():
    with pytest.raises(ValueError, match="needs data"):
        LSUV(Orthogonal())(nn.Linear(2, 2), (torch.zeros(1, 2),), gen())
    for kwargs, key in (({"tolerance": 0}, "init.tolerance"), ({"max_iterations": 0}, "init.max_iterations")):
        with pytest.raises(ValueError, match=key):
            LSUV(Orthogonal(), **kwargs)


def test_config_composes_and_runs_through_the_runner(tmp_path):
    cfg = compose_train(["arch=cnn", "init=lsuv", "data=synthetic"], tmp_path)
    init = instantiate(cfg.init)
    assert isinstance(init, LSUV) and isinstance(init.base, Orthogonal) and init.max_iterations == 10
    cfg = compose_train(
        ["arch=mlp", "init=lsuv", "data=synthetic", "debug=smoke", "arch.depth=2", "arch.width=32"], tmp_path
    )
    record = run(cfg)
    assert record["status"] == "completed"
