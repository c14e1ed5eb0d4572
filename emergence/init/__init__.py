"""Initializers: one file per rule, one YAML per file in ``conf/init/`` (the config group is the registry).

The contract every initializer follows::

    initializer = SomeInit(**cfg.init)                      # hydra instantiate; bad values raise ValueError
    stats = initializer(model, example, generator)          # a rule that only draws weights
    stats = initializer(model, example, generator, batches=batches, device=device)  # a rule that needs data

- ``model``: the freshly built ``nn.Module`` (on the CPU; the runner moves it to the training device afterwards).
- ``example``: a tuple of positional model inputs for one forward pass (``model(*example)``); used to trace the
  forward-execution order of the layers.
- ``generator``: a ``torch.Generator`` seeded from the run's ``init`` stream; every random draw uses it, so the same
  seed gives bit-identical weights and a change of initializer never moves the data order.
- ``needs_data`` (class attribute): False for rules that only draw weights; they are called as above. True for
  rules that look at training data; they are called with two more keywords, ``batches=`` and ``device=``, and declare
  what they draw with three attributes (the last two optional), which ``initialize`` passes on to the task's one
  batch source, ``batches = task.init_batches(batch_size, data_generator, batch_kind)``, an endless iterator that
  draws a batch only when the rule asks for the next one:

  - ``batch_size``: the size of one draw (images, or a token budget for translation).
  - ``batch_kind``: ``"batch"`` (default), each item one ``InitBatch``; ``"thirds"``, each item three disjoint
    ``InitBatch`` parts (B0, B1, B2) of one random draw (GradInit's; images: three half-batches of
    ``batch_size // 2``; ``b0 + b1`` joins two).
  - ``data_stream``: ``"init_data"`` (default), the run's own stream for init data (emergence/seeding.py), so
    drawing data never shifts the weights' draws; ``"init"``, the very ``generator`` the rule gets, so its batches
    are drawn after the rule's own weight draws (GradInit: after its base init, as the official code seeds it; the
    committed GradInit results depend on this order).

  ``device`` is the training device: a rule may run its data passes there (GradInit does); LSUV and MetaInit run
  where the model is (the CPU) and ignore it. A batch goes where the rule needs it with ``batch.to(device)``. A rule
  that needs data but gets none raises.
- It changes parameters in place under ``torch.no_grad()`` (or its own autograd for learned inits), restores every
  module's training flag, and returns a flat ``dict[str, float | int | str]`` that the runner logs under ``init/``.
  A learned init reports its cost as ``<name>/time_s`` and ``<name>/steps`` and may keep ``self.history`` (one dict per
  step), which the runner writes to ``init_history.jsonl``. One with a ``cache`` attribute that is true and
  ``save(path, key)`` / ``load(model, path, key) -> stats | None`` has its result kept in the run dir
  (``init_cache.pt``, under the config fingerprint) and reused on a rerun; ``load`` restores ``history`` too.
- A rule that cannot apply to the model raises ``InitNotApplicable`` (a ``ConfigError``: the CLI exits with code 2)
  with one line saying which option to set.

``emergence/components.py::initialize`` is the only caller in the runner, and it calls every initializer this one
way. How to add an initializer: docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from emergence.config import ConfigError

BATCH_KINDS = ("batch", "thirds")  # what one item of ``task.init_batches`` is (see the contract above)
DATA_STREAMS = ("init_data", "init")  # where an initializer's batches are drawn from


class InitNotApplicable(ConfigError):
    """The chosen initializer does not fit the chosen architecture (e.g. Fixup on a model without its scalars)."""


def _move(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_move(o, device) for o in obj)
    if isinstance(obj, list):
        return [_move(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _move(v, device) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class InitBatch:
    """One training batch as an initializer sees it: model inputs and the task's training loss, nothing else.

    ``batch.inputs`` are the positional model inputs, ``batch.loss(outputs)`` is the task's training loss on them
    (label smoothing included), ``batch.to(device)`` moves every tensor, ``a + b`` is one batch made of two (the
    task's ``merge``; GradInit's S = B0 + B1).
    """

    raw: Any
    to_inputs: Callable[[Any], tuple]
    criterion: Callable[[Any, Any], torch.Tensor]
    join: Callable[[Any, Any], Any] | None = None  # the task's merge of two raw batches (``a + b``)

    @property
    def inputs(self) -> tuple:
        return tuple(self.to_inputs(self.raw))

    def loss(self, outputs) -> torch.Tensor:
        return self.criterion(outputs, self.raw)

    def to(self, device: torch.device | str) -> InitBatch:
        return replace(self, raw=_move(self.raw, torch.device(device)))

    def __add__(self, other: InitBatch) -> InitBatch:
        """One batch made of two (GradInit's S = B0 + B1), joined by the task's merge."""
        if self.join is None:
            raise TypeError("this InitBatch has no join (the task's merge), so it cannot be added to another")
        return replace(self, raw=self.join(self.raw, other.raw))


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))
