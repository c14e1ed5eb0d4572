"""Argument checks and channel arithmetic shared by the image models (SmallCNN, VGG, ResNet).

Conventions shared by every model in `emergence.models` (VGG, ResNet, SmallCNN, MLP):
- ``Name(input_shape, num_classes, *, <arch kwargs>)`` with ``input_shape = (C, H, W)`` from the data.
- ``norm`` is ``"batch"`` or ``"none"``; conv layers carry a bias only without BN.
- ``width`` multiplies channel counts (rounded, at least 1).
- PyTorch layer defaults only; the initializers in `emergence.init` set the weights.
- every activation is its own ``nn.ReLU`` module (not in place, so a hook on the preceding layer sees its own output),
  so forward hooks see each hidden layer (docs/method.md#measurement-conventions).
"""

from __future__ import annotations

from collections.abc import Sequence

NORMS = ("batch", "none")


def check_choice(key: str, value: object, allowed: Sequence[object]) -> None:
    """Raise ``ValueError`` naming the config key ``arch.<key>`` when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"arch.{key} must be one of {choices}; got {value!r}")


def check_input_shape(input_shape: Sequence[int], num_classes: int) -> tuple[int, int, int]:
    """Validate ``(C, H, W)`` and ``num_classes``; return the shape as a tuple of ints."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes; got {tuple(input_shape)!r}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes!r}")
    return shape  # type: ignore[return-value]


def check_width(width: float) -> None:
    """Raise ``ValueError`` unless ``arch.width`` is a positive number."""
    if not width > 0:
        raise ValueError(f"arch.width must be a positive number; got {width!r}")


def scale_channels(channels: int, width: float) -> int:
    """Channel count ``channels * width``, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def pool_out(size: int) -> int:
    """Side length after a 2x2/stride-2 max-pool (floor), as ``nn.MaxPool2d(2)`` computes it."""
    return size // 2
