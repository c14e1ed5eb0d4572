"""The initializer contract (emergence/init/__init__.py): the tasks' batch source, the ``init_data`` stream, and
``components.initialize`` calling every data-dependent initializer the same way (GradInit through its old path)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from emergence import seeding
from emergence.components import initialize
from emergence.data.images import read_synthetic
from emergence.init import InitBatch
from emergence.tasks.classification import ClassificationTask
from tests.test_translation_task import make_task, write_corpus

CPU = torch.device("cpu")
SYNTH = {"n_train": 300, "n_test": 50, "num_classes": 4, "shape": [1, 6, 6]}


def image_task(**kw):
    return ClassificationTask("synthetic", val_size=50, reader=partial(read_synthetic, **SYNTH), **kw).setup(CPU)


def test_removed_streams_are_gone_and_init_data_is_separate():
    assert "gradinit" not in seeding.STREAMS and "split" not in seeding.STREAMS
    seeds = {seeding.stream_seed(0, s) for s in seeding.STREAMS}
    assert len(seeds) == len(seeding.STREAMS)  # every stream distinct, init_data included
    # the surviving streams keep their numbers, so existing runs keep their results
    assert {k: seeding.STREAMS[k] for k in ("model", "init", "data", "train", "probe")} == {
        "model": 0, "init": 1, "data": 2, "train": 4, "probe": 5
    }  # fmt: skip


def test_image_init_batches_are_seeded_distinct_draws_with_the_task_loss():
    task = image_task()
    a = task.init_batches(32, torch.Generator().manual_seed(1))
    b = task.init_batches(32, torch.Generator().manual_seed(1))
    first, second = next(a), next(a)
    again = next(b)
    assert isinstance(first, InitBatch)
    x, y = first.raw
    assert x.shape == (32, 1, 6, 6) and x.dtype == torch.float32 and y.shape == (32,)
    assert torch.equal(first.raw[0], again.raw[0]) and torch.equal(first.raw[1], again.raw[1])
    assert not torch.equal(first.raw[0], second.raw[0])  # the iterator keeps drawing
    # distinct images within a batch: no row repeats
    assert len({tuple(r.tolist()) for r in x.flatten(1)}) == 32
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    out = model(*first.inputs)
    assert torch.allclose(first.loss(out), nn.functional.cross_entropy(out, y))
    moved = first.to("cpu")
    assert torch.equal(moved.raw[0], x)


def test_image_init_batches_reject_impossible_sizes():
    task = image_task()
    for bad in (0, 10_000):
        try:
            next(task.init_batches(bad, torch.Generator()))
        except ValueError as exc:
            assert "init.batch_size" in str(exc)
        else:
            raise AssertionError(f"batch size {bad} was accepted")


def test_translation_init_batches_fit_the_token_budget(tmp_path):
    task = make_task(write_corpus(tmp_path / "c", n_train=200, n_eval=10))
    it = task.init_batches(150, torch.Generator().manual_seed(0))
    for _ in range(3):
        batch = next(it)
        src, prev = batch.inputs
        assert src.size(0) >= 3 and max(src.numel(), prev.numel()) <= max(150, 3 * src.size(1))
        assert torch.isfinite(batch.loss(torch.zeros(*prev.shape, task.model_kwargs()["tgt_vocab_size"])))


class Recorder:
    """A data-dependent initializer that records what it was given."""

    needs_data = True
    batch_size = 16

    def __call__(self, model, example, generator, batches=None):
        self.batch = next(batches)
        self.generator_state = generator.get_state()
        return {"seen": len(self.batch.raw[1])}


def test_initialize_gives_batches_from_the_init_data_stream(tmp_path):
    task = image_task()
    rec = Recorder()
    model = nn.Linear(36, 4)
    stats, seconds = initialize(rec, model, task.example_inputs(), task, 3, CPU, tmp_path, "fp")
    assert stats == {"seen": 16} and seconds >= 0
    expected = next(task.init_batches(16, seeding.generator(3, "init_data")))
    assert torch.equal(rec.batch.raw[0], expected.raw[0])
    assert torch.equal(rec.generator_state, seeding.generator(3, "init").get_state())
    assert not (tmp_path / "init_cache.pt").exists()  # no cache unless the initializer asks for one


def test_initialize_keeps_gradinit_on_its_task_path(tmp_path):
    from emergence.init.gradinit import GradInit
    from emergence.init.kaiming import Kaiming
    from emergence.models.mlp import MLP

    task = image_task()
    model = MLP((1, 6, 6), 4, depth=2, width=8)
    gi = GradInit(Kaiming(), gamma=1.0, iterations=2, batch_size=8)
    stats, _ = initialize(gi, model, task.example_inputs(), task, 0, CPU, tmp_path, "fp")
    assert stats["gradinit/n_constraint"] + stats["gradinit/n_objective"] == 2
    assert (tmp_path / "init_cache.pt").exists()
    cached, _ = initialize(gi, MLP((1, 6, 6), 4, depth=2, width=8), task.example_inputs(), task, 0, CPU, tmp_path, "fp")
    assert cached["gradinit/cached"] == 1
