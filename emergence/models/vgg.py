"""CIFAR-style VGG-11/13/16/19 (Simonyan & Zisserman 2015, configurations A/B/D/E), with or without BatchNorm.

The feature stack is the paper's conv3x3 (padding 1) -> [BN] -> ReLU sequence with a 2x2 max-pool at each 'M' of the
configuration. The default ``classifier="single"`` is one ``Linear(512*width -> num_classes)`` on the flattened
features, as in GradInit's CIFAR VGG (zhuchen03/gradinit ``models/vgg.py``), which the suite takes as the
default recipe: VGG-19 then has 16 convs + 1 linear = 17 weight layers for the emergence ramp (docs/method.md).
``classifier="three"`` is the original 3-layer head ``Linear(512,512)-ReLU-Linear(512,512)-ReLU-Linear(512,classes)``
(no dropout unless ``dropout > 0``); the only concrete Emergence instance (companion paper, App. B) rescales exactly
these three classifier layers.

Parameter counts on 3x32x32, 10 classes (biases included; BN running stats are buffers, not parameters):

| model  | classifier | norm=batch | norm=none  |
|--------|------------|-----------:|-----------:|
| VGG-19 | single     | 20,035,018 | 20,029,514 |
| VGG-19 | three      | 20,560,330 | 20,554,826 |

(GradInit keeps a conv bias in front of BN, which gives 20,040,522; here a conv followed by BN has no bias.)

Inputs smaller than 32 px: five 2x2 pools would reach 0 px (28 -> 14 -> 7 -> 3 -> 1 -> 0), so a pool is *dropped*
(not replaced) when the map is already below 2 px on a side. No adaptive pooling is added, so on 32x32 the network is
exactly the CIFAR VGG, and the classifier input is computed from the final map size (512*width*h*w; 1x1 for 28 and 32
px inputs).

Example:
    >>> VGG((3, 32, 32), 10, depth=19, norm="none")(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from emergence.models.common import NORMS, check_choice, check_input_shape, check_width, pool_out, scale_channels

# Channel counts per conv, "M" = 2x2 max-pool; keys are the weight-layer depth with the original 3-layer classifier.
CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # A
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # B
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # D
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],  # E
}
CLASSIFIERS = ("single", "three")


class VGG(nn.Module):
    """VGG feature stack plus a one- or three-layer classifier.

    Args:
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: number of output logits.
        depth: 11, 13, 16 or 19 (configurations A, B, D, E).
        norm: ``"batch"`` (BatchNorm2d after each conv, conv without bias) or ``"none"`` (conv with bias).
        classifier: ``"single"`` (one Linear, GradInit's CIFAR VGG) or ``"three"`` (Linear-ReLU-Linear-ReLU-Linear).
        width: multiplies every channel count and the 512-wide hidden layers of the three-layer classifier.
        dropout: dropout probability after each hidden ReLU of the ``"three"`` classifier; 0 adds no module.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 19,
        norm: str = "batch",
        classifier: str = "single",
        width: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        in_ch, h, w = check_input_shape(input_shape, num_classes)
        check_choice("depth", depth, tuple(CFGS))
        check_choice("norm", norm, NORMS)
        check_choice("classifier", classifier, CLASSIFIERS)
        check_width(width)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"arch.dropout must be in [0, 1); got {dropout!r}")
        if dropout > 0 and classifier != "three":
            raise ValueError(f"arch.dropout only applies to arch.classifier='three'; got classifier={classifier!r}")
        self.depth, self.norm, self.classifier_kind = depth, norm, classifier
        use_bn = norm == "batch"

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        n_conv = n_pool = 0
        for item in CFGS[depth]:
            if item == "M":
                # Drop a pool that would take the map below 1x1 (inputs under 32 px); see module docstring.
                if h >= 2 and w >= 2:
                    layers[f"pool{n_pool}"] = nn.MaxPool2d(kernel_size=2, stride=2)
                    h, w = pool_out(h), pool_out(w)
                    n_pool += 1
                continue
            out_ch = scale_channels(int(item), width)
            layers[f"conv{n_conv}"] = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=not use_bn)
            if use_bn:
                layers[f"bn{n_conv}"] = nn.BatchNorm2d(out_ch)
            layers[f"relu{n_conv}"] = nn.ReLU()
            in_ch = out_ch
            n_conv += 1
        self.features = nn.Sequential(layers)
        self.flatten = nn.Flatten()

        n_features = in_ch * h * w
        head: OrderedDict[str, nn.Module] = OrderedDict()
        if classifier == "single":
            head["fc0"] = nn.Linear(n_features, int(num_classes))
        else:
            n_hidden = scale_channels(512, width)
            for i, n_in in enumerate((n_features, n_hidden)):
                head[f"fc{i}"] = nn.Linear(n_in, n_hidden)
                head[f"relu{i}"] = nn.ReLU()
                if dropout > 0:
                    head[f"dropout{i}"] = nn.Dropout(dropout)
            head["fc2"] = nn.Linear(n_hidden, int(num_classes))
        self.classifier = nn.Sequential(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        return self.classifier(self.flatten(self.features(x)))
