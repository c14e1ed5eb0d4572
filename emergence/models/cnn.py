"""Small CNN for quick CPU runs (Fashion-MNIST, sklearn digits).

`SmallCNN` is the suite's stand-in for the paper's "CNN image classification" setting (arXiv 2407.19044, Sec. 5 of
docs/method.md) on data that fits a 2-core CPU: ``[conv3x3 -> (BN) -> ReLU -> maxpool] x len(channels) -> flatten ->
Linear(hidden) -> ReLU -> Linear(num_classes)``. Its weight layers are ``len(channels) + 2`` (4 by default), all on
the main path, so the emergence rule (docs/method.md#depth-units) ramps over them in this order.

A 2x2 max-pool is skipped when the feature map is already smaller than 2 px on a side, so no input pools below 1x1
(8x8 digits: 8 -> 4 -> 2 with the default two stages; a fourth stage would meet a 1x1 map and skip its pool).

The conventions every model in `emergence.models` follows are listed in `emergence.models.common`.

Example:
    >>> model = SmallCNN((1, 28, 28), 10)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from emergence.models.common import NORMS, check_choice, check_input_shape, check_width, pool_out, scale_channels


class SmallCNN(nn.Module):
    """conv3x3-[BN]-ReLU-maxpool stages, then a one-hidden-layer ReLU classifier.

    Args:
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: number of output logits.
        channels: output channels of each conv stage (before ``width``).
        hidden: width of the hidden fully connected layer (before ``width``).
        norm: ``"batch"`` puts BatchNorm2d after each conv (conv without bias); ``"none"`` keeps conv biases.
        width: multiplies ``channels`` and ``hidden``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        norm: str = "none",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        in_ch, h, w = check_input_shape(input_shape, num_classes)
        check_choice("norm", norm, NORMS)
        check_width(width)
        channels = tuple(int(c) for c in channels)
        if len(channels) == 0 or min(channels) < 1:
            raise ValueError(f"arch.channels must be a non-empty list of positive ints; got {channels!r}")
        if int(hidden) < 1:
            raise ValueError(f"arch.hidden must be a positive int; got {hidden!r}")
        self.norm = norm
        use_bn = norm == "batch"

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, c in enumerate(channels):
            out_ch = scale_channels(c, width)
            layers[f"conv{i}"] = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=not use_bn)
            if use_bn:
                layers[f"bn{i}"] = nn.BatchNorm2d(out_ch)
            layers[f"relu{i}"] = nn.ReLU()
            # Skip the pool once the map is below 2 px, so 8x8 digits never reach 0x0.
            if h >= 2 and w >= 2:
                layers[f"pool{i}"] = nn.MaxPool2d(kernel_size=2, stride=2)
                h, w = pool_out(h), pool_out(w)
            in_ch = out_ch
        self.features = nn.Sequential(layers)
        self.flatten = nn.Flatten()
        n_hidden = scale_channels(int(hidden), width)
        self.classifier = nn.Sequential(
            OrderedDict(
                fc0=nn.Linear(in_ch * h * w, n_hidden),
                relu=nn.ReLU(),
                fc1=nn.Linear(n_hidden, int(num_classes)),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        return self.classifier(self.flatten(self.features(x)))
