"""Initializers: one file per rule, one YAML per file in ``conf/init/`` (the config group is the registry).

The contract every initializer follows::

    initializer = SomeInit(**cfg.init)                      # hydra instantiate; bad values raise ValueError
    stats = initializer(model, example, generator, batches=None)

- ``model``: the freshly built ``nn.Module`` (on the CPU; the runner moves it to the training device afterwards).
- ``example``: a tuple of positional model inputs for one forward pass (``model(*example)``); used to trace the
  forward-execution order of the layers.
- ``generator``: a ``torch.Generator`` seeded from the run's ``init`` stream; every random draw uses it, so the same
  seed gives bit-identical weights and a change of initializer never moves the data order.
- ``needs_data`` (class attribute): False for rules that only draw weights. True for rules that look at training
  data; such a class also has ``batch_size`` (images per batch, or a token budget for translation) and is called with
  ``batches=``, an endless iterator of ``InitBatch`` drawn by ``task.init_batches(batch_size, generator)`` from the
  run's separate ``init_data`` stream (emergence/seeding.py). A rule that needs data but gets none raises.
- It changes parameters in place under ``torch.no_grad()`` (or its own autograd for learned inits), restores every
  module's training flag, and returns a flat ``dict[str, float | int | str]`` that the runner logs under ``init/``.
  A learned init reports its cost as ``<name>/time_s`` and ``<name>/steps`` and may keep ``self.history`` (one dict per
  step), which the runner writes to ``init_history.jsonl``.
- A rule that cannot apply to the model raises ``InitNotApplicable`` (a ``ConfigError``: the CLI exits with code 2)
  with one line saying which option to set.

``emergence/components.py::initialize`` is the only caller in the runner. GradInit still uses its older data call
(``task=``, ``device=``, and its own cache in the run dir); ``initialize`` keeps that path until GradInit takes
``batches=`` too. How to add an initializer: docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from emergence.config import ConfigError


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
    (label smoothing included), ``batch.to(device)`` moves every tensor.
    """

    raw: Any
    to_inputs: Callable[[Any], tuple]
    criterion: Callable[[Any, Any], torch.Tensor]

    @property
    def inputs(self) -> tuple:
        return tuple(self.to_inputs(self.raw))

    def loss(self, outputs) -> torch.Tensor:
        return self.criterion(outputs, self.raw)

    def to(self, device: torch.device | str) -> InitBatch:
        return replace(self, raw=_move(self.raw, torch.device(device)))


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))
