"""PyTorch's own layer defaults (kaiming_uniform with a = sqrt(5), uniform biases): the no-op control.

Contract shared by every initializer in this package: ``init(model, example, generator) -> dict``. It is called with
the freshly built model, a tuple of example inputs for one forward pass, and a torch.Generator (the run's ``init``
stream); it changes parameters in place under ``torch.no_grad()`` and returns a flat dict of statistics that the runner
logs under ``init/``. ``needs_data`` is True only for initializers that look at data (LSUV, MetaInit, GradInit),
which also get ``batches=`` and ``device=`` (the full contract: emergence/init/__init__.py).
"""

from __future__ import annotations

from torch import nn

from emergence.init.layers import weight_stats


class TorchDefault:
    """Leaves every parameter exactly as the constructors made it."""

    needs_data = False

    def __call__(self, model: nn.Module, example: tuple = (), generator=None) -> dict[str, float]:
        return weight_stats(model)
