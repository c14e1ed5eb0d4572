"""The initializer contract (emergence/init/__init__.py): the tasks' batch source, the ``init_data`` stream, and
``components.initialize`` calling every data-dependent initializer the same way, GradInit included."""

from __future__ import annotations

from functools import partial

import pytest
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

    def __call__(self, model, example, generator, batches=None, device=None):
        self.batch, self.device = next(batches), device
        self.generator_state = generator.get_state()
        return {"seen": len(self.batch.raw[1])}


def test_initialize_gives_batches_from_the_init_data_stream(tmp_path):
    task = image_task()
    rec = Recorder()
    model = nn.Linear(36, 4)
    stats, seconds = initialize(rec, model, task.example_inputs(), task, 3, CPU, tmp_path, "fp")
    assert stats == {"seen": 16} and seconds >= 0 and rec.device == CPU
    expected = next(task.init_batches(16, seeding.generator(3, "init_data")))
    assert torch.equal(rec.batch.raw[0], expected.raw[0])
    assert torch.equal(rec.generator_state, seeding.generator(3, "init").get_state())
    assert not (tmp_path / "init_cache.pt").exists()  # no cache unless the initializer asks for one


def test_image_thirds_are_three_disjoint_half_batches_that_add_up():
    task = image_task()  # no augmentation: an image's bytes identify it
    b0, b1, b2 = next(task.init_batches(32, torch.Generator().manual_seed(0), "thirds"))
    rows = [{r.numpy().tobytes() for r in b.raw[0].flatten(1)} for b in (b0, b1, b2)]
    assert [len(r) for r in rows] == [16, 16, 16] and not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    s = b0 + b1
    assert torch.equal(s.raw[0], torch.cat([b0.raw[0], b1.raw[0]])) and torch.equal(s.raw[1][16:], b1.raw[1])
    with pytest.raises(ValueError, match="init.batch_size=200 asks for 300 images"):
        next(task.init_batches(200, torch.Generator(), "thirds"))  # 250 training images
    with pytest.raises(ValueError, match="kind"):
        next(task.init_batches(8, torch.Generator(), "pairs"))
    with pytest.raises(TypeError, match="no join"):
        InitBatch(b0.raw, task.inputs, task.criterion) + b1


class SpyTask:
    """The task, recording the generator the first draw of every ``init_batches`` iterator used, as it was then."""

    def __init__(self, task):
        self.task, self.first = task, []

    def __getattr__(self, name):
        return getattr(self.task, name)

    def init_batches(self, batch_size, generator, kind="batch"):
        self.first.append((kind, generator, generator.get_state()))
        yield from self.task.init_batches(batch_size, generator, kind)


def test_initialize_gives_gradinit_thirds_from_the_init_generator_after_its_base_init(tmp_path):
    """GradInit's batches come from the ``init`` stream, lazily, after the base init's draws (the official seeding
    the committed results use): the first draw sees the generator exactly as a plain base init leaves it."""
    from emergence.init.gradinit import GradInit
    from emergence.init.kaiming import Kaiming
    from emergence.models.mlp import MLP

    task = SpyTask(image_task())
    torch.manual_seed(0)
    model = MLP((1, 6, 6), 4, depth=2, width=8)
    plain = MLP((1, 6, 6), 4, depth=2, width=8)
    plain.load_state_dict(model.state_dict())
    after_base = seeding.generator(5, "init")
    Kaiming()(plain, task.example_inputs(), after_base)
    gi = GradInit(Kaiming(), gamma=1.0, iterations=2, batch_size=8)
    stats, _ = initialize(gi, model, task.example_inputs(), task, 5, CPU, tmp_path, "fp")
    assert stats["gradinit/n_constraint"] + stats["gradinit/n_objective"] == 2 and len(gi.history) == 2
    ((kind, generator, state),) = task.first
    assert kind == "thirds" and torch.equal(state, after_base.get_state())
    assert not torch.equal(state, seeding.generator(5, "init").get_state())  # the base init did draw first
    assert (tmp_path / "init_cache.pt").exists()
    again = MLP((1, 6, 6), 4, depth=2, width=8)
    cached, seconds = initialize(gi, again, task.example_inputs(), task, 5, CPU, tmp_path, "fp")
    assert cached["gradinit/cached"] == 1 and seconds == stats["gradinit/time_s"] and len(task.first) == 1
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_initialize_refuses_an_unknown_data_stream(tmp_path):
    rec = Recorder()
    rec.data_stream = "train"
    with pytest.raises(ValueError, match="data_stream"):
        initialize(rec, nn.Linear(36, 4), (), image_task(), 0, CPU, tmp_path, "fp")
