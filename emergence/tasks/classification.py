"""Image classification task: data in memory on the training device, loss, evaluation.

The whole dataset sits in one uint8 tensor on the device, so an epoch is a seeded permutation and index slicing (each
batch normalized, and augmented on the device, when drawn): no DataLoader, no per-image PIL work. A fixed validation
split is carved out of the training set with
``split_seed`` (the same for every run seed, so seeds vary only init and data order); the official test set is
evaluated at the end. Batch augmentation (crop/flip/cutout on tensors) is optional. ``reader`` is the dataset's
reader, the instantiated ``data.reader`` of its conf/data file (emergence/data/images.py): a callable
``reader(root) -> dict(train_x, train_y, test_x, test_y)`` (uint8 N x C x H x W images, int64 labels), e.g. a Hydra
``_partial_`` target, so a new dataset needs no edit of the package (docs/extending.md). ``dataset`` is its name in
labels, run names and tables.

Task interface used by the runner (the translation task provides the same methods):
``setup(device)``, ``model_kwargs()``, ``example_inputs()``, ``steps_per_epoch(batch_size)``,
``train_batches(batch_size, generator)``, ``loss(model, batch) -> (loss, stats)``, ``evaluate(model, split)``,
``probe_inputs(n, generator)``, ``target_metric``, ``init_batches(batch_size, generator, kind)`` (data for
data-dependent initializers, see emergence/init/__init__.py), ``merge``, ``inputs``, ``criterion``.
The runner sets ``task.run_dir`` after ``setup``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from emergence.init import BATCH_KINDS, InitBatch


class ClassificationTask:
    target_metric = "val/acc"

    def __init__(
        self,
        dataset: str,
        root: str = "data",
        val_size: int = 5000,
        train_subset: int | None = None,
        test_subset: int | None = None,
        split_seed: int = 0,
        label_smoothing: float = 0.0,
        eval_batch_size: int = 1024,
        augment: dict | None = None,
        reader=None,
    ):
        if not callable(reader):
            raise ValueError(
                f"data.reader must be a reader: a _target_ (a function with _partial_: true, or a class) that reads "
                f"the dataset, as in conf/data/fashion_mnist.yaml; got {reader!r} for data.dataset={dataset!r}"
            )
        self.read = reader
        if val_size < 0 or (train_subset is not None and train_subset < 1):
            raise ValueError(
                f"data.val_size must be >= 0 and data.train_subset >= 1 or null; got {val_size}, {train_subset}"
            )
        self.dataset, self.root, self.val_size = dataset, root, int(val_size)
        self.train_subset, self.test_subset, self.split_seed = train_subset, test_subset, int(split_seed)
        self.label_smoothing, self.eval_batch_size = float(label_smoothing), int(eval_batch_size)
        self.augment_cfg = dict(augment or {})
        self.augment = None

    # ---- data ---------------------------------------------------------------------------------------------------
    def setup(self, device: torch.device) -> ClassificationTask:
        raw = self.read(self.root)
        train_x, train_y = raw["train_x"], raw["train_y"]
        perm = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(self.split_seed))
        if self.val_size >= len(train_y):
            raise ValueError(f"data.val_size={self.val_size} leaves no training data ({len(train_y)} images)")
        val_idx, train_idx = perm[: self.val_size], perm[self.val_size :]
        if self.train_subset is not None:
            train_idx = train_idx[: self.train_subset]
        test_x, test_y = raw["test_x"], raw["test_y"]
        if self.test_subset is not None:
            test_x, test_y = test_x[: self.test_subset], test_y[: self.test_subset]
        if "mean" in raw:  # the dataset's published constants (CIFAR)
            mean, std = torch.tensor(raw["mean"]).float(), torch.tensor(raw["std"]).float()
        else:  # per channel, from the training split
            x = train_x[train_idx].float() / 255
            mean, std = x.mean([0, 2, 3]), x.std([0, 2, 3]).clamp_min(1e-6)
        self.mean, self.std = mean.to(device), std.to(device)
        # images stay uint8 on the device (4x less memory); each batch is normalized (and augmented) when drawn
        self.splits = {
            "train": (train_x[train_idx].to(device), train_y[train_idx].to(device)),
            "val": (train_x[val_idx].to(device), train_y[val_idx].to(device)),
            "test": (test_x.to(device), test_y.to(device)),
        }
        if self.val_size == 0:  # no held-out split: evaluate on the test set (GradInit's CIFAR recipe)
            self.splits["val"] = self.splits["test"]
        self.num_classes = int(max(int(train_y.max()), int(test_y.max())) + 1)
        self.input_shape = tuple(train_x.shape[1:])
        self.device = device
        if any(self.augment_cfg.get(k) for k in ("crop_padding", "flip", "cutout")):
            from emergence.data.augment import Augment

            cfg = {"crop_padding": 0, "flip": False, "cutout": 0, **self.augment_cfg}
            self.augment = Augment(**cfg, mean=self.mean.tolist(), std=self.std.tolist())
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float, standardized per channel."""
        return (images.float() / 255 - self.mean[None, :, None, None]) / self.std[None, :, None, None]

    def _train_view(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.normalize(images) if self.augment is None else self.augment(images, generator)

    def model_kwargs(self) -> dict:
        """What the architecture needs to know about the data."""
        return {"input_shape": self.input_shape, "num_classes": self.num_classes}

    @property
    def num_train(self) -> int:
        return len(self.splits["train"][1])

    def example_inputs(self, n: int = 8) -> tuple:
        return (self.normalize(self.splits["train"][0][:n]),)

    def probe_inputs(self, n: int, generator: torch.Generator) -> tuple:
        """A fixed, seeded probe batch from the validation split (the emergence measure's input)."""
        x = self.splits["val"][0] if len(self.splits["val"][1]) else self.splits["train"][0]
        idx = torch.randperm(len(x), generator=generator)[:n]
        return (self.normalize(x[idx.to(x.device)]),)

    def steps_per_epoch(self, batch_size: int) -> int:
        steps = self.num_train // batch_size
        if steps < 1:
            raise ValueError(f"trainer.batch_size={batch_size} exceeds the {self.num_train} training images")
        return steps

    def train_batches(self, batch_size: int, generator: torch.Generator, start: int = 0) -> Iterator[tuple]:
        """One epoch of shuffled batches (last partial batch dropped), starting at batch ``start``.

        The epoch's order and one augmentation seed are drawn from ``generator`` up front; batch i is augmented with
        its own generator seeded from (that seed, i), so starting at ``start`` gives exactly the batches an
        uninterrupted epoch would (exact resume).
        """
        x, y = self.splits["train"]
        perm = torch.randperm(len(y), generator=generator).to(x.device)
        aug_seed = int(torch.randint(2**62, (1,), generator=generator))
        for i in range(start, self.steps_per_epoch(batch_size)):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            yield self._train_view(x[idx], torch.Generator().manual_seed(aug_seed + i)), y[idx]

    def init_batches(self, batch_size: int, generator: torch.Generator, kind: str = "batch") -> Iterator:
        """Endless random training batches (with the training augmentation) for data-dependent initializers, drawn
        with ``generator`` only when asked for (emergence/init/__init__.py).

        ``kind="batch"``: each item is one ``InitBatch`` of ``batch_size`` distinct images; ``"thirds"``: three
        disjoint half-batches (B0, B1, B2) of ``batch_size // 2`` images each (GradInit's S = B0 + B1). Draws are
        independent.
        """
        x, y = self.splits["train"]
        if kind not in BATCH_KINDS:
            raise ValueError(f"init batch kind must be one of {list(BATCH_KINDS)}; got {kind!r}")
        need = batch_size if kind == "batch" else 3 * (batch_size // 2)  # images per draw
        if not 1 <= need <= len(y):
            raise ValueError(
                f"init.batch_size={batch_size} asks for {need} images per draw ({kind}); the training split has "
                f"{len(y)}: choose a smaller init.batch_size"
            )
        while True:
            idx = torch.randperm(len(y), generator=generator)[:need].to(x.device)
            if kind == "batch":
                yield self._init_batch(x[idx], y[idx], generator)
            else:
                yield tuple(self._init_batch(x[j], y[j], generator) for j in idx.split(batch_size // 2))

    def _init_batch(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> InitBatch:
        return InitBatch((self._train_view(images, generator), labels), self.inputs, self.criterion, self.merge)

    @staticmethod
    def merge(a: tuple, b: tuple) -> tuple:
        """One batch made of two (S = B0 + B1 in GradInit)."""
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])

    # ---- loss and evaluation ------------------------------------------------------------------------------------
    @staticmethod
    def inputs(batch: tuple) -> tuple:
        """Positional model inputs of a batch (``model(*task.inputs(batch))``)."""
        return (batch[0],)

    def criterion(self, logits: torch.Tensor, batch: tuple) -> torch.Tensor:
        """The training loss of model outputs on a batch (label smoothing included)."""
        return F.cross_entropy(logits, batch[1], label_smoothing=self.label_smoothing)

    def loss(self, model: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict]:
        logits = model(*self.inputs(batch))
        y = batch[1]
        return self.criterion(logits, batch), {"correct": (logits.argmax(1) == y).sum(), "n": len(y)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, epoch: float | None = None, final: bool = False) -> dict:
        """Mean loss and accuracy on ``split`` (``epoch``/``final`` are unused: every evaluation is the same here)."""
        x, y = self.splits[split]
        if len(y) == 0:
            return {}
        was_training = model.training
        model.eval()
        total_loss, correct = 0.0, 0
        for i in range(0, len(y), self.eval_batch_size):
            logits = model(self.normalize(x[i : i + self.eval_batch_size]))
            yb = y[i : i + self.eval_batch_size]
            total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        model.train(was_training)
        return {"loss": total_loss / len(y), "acc": correct / len(y)}
