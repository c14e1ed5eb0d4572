"""CIFAR ResNets of He et al. 2016 (Sec. 4.2, "Deep Residual Learning"): depth 6n+2 with option-A shortcuts.

Layout: conv3x3(16*width) -> [BN] -> ReLU -> 3 stages of n BasicBlocks with 16/32/64 (x width) channels, the first
block of stages 2 and 3 striding by 2 -> global average pool -> Linear(64*width -> num_classes). The weight layers are
1 + 2*3n convs + 1 linear = 6n + 2 = ``depth`` (ResNet-56: 56, ResNet-110: 110), all on the main path, because the
option-A shortcut has no parameters: it subsamples ``x[:, :, ::2, ::2]`` and zero-pads the new channels (half in
front, half behind). This is the layer count docs/method.md#depth-units uses for the emergence ramp; GradInit's
ResNet-110
(zhuchen03/gradinit ``models/gradinit_resnet_cifar.py``) is the same family.

Parameter counts on 3x32x32, 10 classes (biases included; BN running stats are buffers):

| depth | norm=batch | norm=none |
|------:|-----------:|----------:|
| 20    | 269,722    | 269,034   |
| 56    | 853,018    | 850,986   |
| 110   | 1,727,962  | 1,723,914 |

(He et al. report 0.27 M, 0.85 M and 1.7 M.)

BasicBlock forward order is the registration order: ``conv1 -> bn1 -> relu1 -> conv2 -> bn2``, then ``shortcut`` on
the block input, the sum, and ``relu2`` (its own module, after the addition). Without BN every conv keeps its bias and
the ``bn*`` attributes are ``nn.Identity``.

``fixup=True`` (only with ``norm="none"``) is the Fixup architecture of Zhang et al. 2019 (arXiv 1901.09321, Sec. 3 and
the official ``hongyi-zhang/Fixup`` CIFAR model): convs lose their bias, and scalar parameters are added where the
paper puts them: a bias before each conv, before each ReLU and before the classifier, and one multiplier per residual
branch. Per block: ``h = x + bias1a; out = relu1(conv1(h) + bias1b); out = conv2(out + bias2a) * scale + bias2b;
relu2(out + shortcut(h))``; the stem is ``relu(conv(x) + bias1)`` and the head ``fc(pool(x) + bias2)``. The model only
creates them (biases 0, multipliers 1); ``init=fixup`` (emergence/init/fixup.py) sets the weights. ResNet-20 with
Fixup has 268,393 parameters on 3x32x32 (269,034 - 688 conv biases + 5 scalars x 9 blocks + 2).

Example:
    >>> ResNet((3, 32, 32), 10, depth=56)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from emergence.models.common import NORMS, check_choice, check_input_shape, check_width, scale_channels

STAGE_CHANNELS = (16, 32, 64)


class ShortcutA(nn.Module):
    """Option-A shortcut: stride-``stride`` spatial subsampling plus zero channels, no parameters.

    Args:
        in_channels: channels of the block input.
        out_channels: channels of the block output (>= ``in_channels``).
        stride: spatial subsampling factor (1 or 2).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option-A shortcut cannot drop channels ({in_channels} -> {out_channels})")
        self.stride = stride
        extra = out_channels - in_channels
        self.pad_front, self.pad_back = extra // 2, extra - extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample and zero-pad ``x`` to the block's output shape."""
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_front or self.pad_back:
            # F.pad's last pair is the channel dim: (W_left, W_right, H_top, H_bottom, C_front, C_back).
            x = nn.functional.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels=({self.pad_front}, {self.pad_back})"


class BasicBlock(nn.Module):
    """Two conv3x3 layers with a residual connection: ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of ``conv1`` (and of the shortcut's subsampling).
        use_bn: BatchNorm after each conv (convs without bias) or no norm (convs with bias).
        fixup: Fixup's scalar biases and branch multiplier instead of conv biases (needs ``use_bn=False``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_bn: bool, fixup: bool = False) -> None:
        super().__init__()
        self.fixup = fixup
        conv_bias = not (use_bn or fixup)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=conv_bias)
        self.bn1 = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=conv_bias)
        self.bn2 = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ShortcutA(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()
        if fixup:
            for name in ("bias1a", "bias1b", "bias2a", "bias2b"):
                self.register_parameter(name, nn.Parameter(torch.zeros(1)))
            self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus shortcut, then the post-addition ReLU."""
        if self.fixup:
            h = x + self.bias1a
            out = self.relu1(self.conv1(h) + self.bias1b)
            out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
            return self.relu2(out + self.shortcut(h))
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet-(6n+2) with option-A shortcuts.

    Args:
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: number of output logits.
        depth: weight-layer count 6n+2 (20, 32, 44, 56, 110, ...; 8 is the smallest, n = 1).
        norm: ``"batch"`` or ``"none"``.
        width: multiplies the 16/32/64 stage channels.
        fixup: Fixup's scalar biases and multipliers (see the module docstring; needs ``norm="none"``).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 20,
        norm: str = "batch",
        width: float = 1.0,
        fixup: bool = False,
    ) -> None:
        super().__init__()
        in_ch, _, _ = check_input_shape(input_shape, num_classes)
        if fixup and norm != "none":
            raise ValueError("arch.fixup=true needs arch.norm=none (Fixup replaces BatchNorm): use a resnet*_nobn arch")
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"arch.depth must be 6n+2 with n >= 1 (e.g. 20, 32, 44, 56, 110); got {depth!r}")
        check_choice("norm", norm, NORMS)
        check_width(width)
        self.depth, self.norm, self.fixup = depth, norm, bool(fixup)
        n_blocks = (depth - 2) // 6
        use_bn = norm == "batch"
        channels = [scale_channels(c, width) for c in STAGE_CHANNELS]

        self.conv = nn.Conv2d(in_ch, channels[0], 3, padding=1, bias=not (use_bn or fixup))
        self.bn = nn.BatchNorm2d(channels[0]) if use_bn else nn.Identity()
        self.relu = nn.ReLU()
        prev = channels[0]
        for s, out_ch in enumerate(channels):
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(n_blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks[f"block{b}"] = BasicBlock(prev, out_ch, stride, use_bn, self.fixup)
                prev = out_ch
            self.add_module(f"stage{s + 1}", nn.Sequential(blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(prev, int(num_classes))
        if self.fixup:
            self.bias1 = nn.Parameter(torch.zeros(1))  # after the stem conv, before its ReLU
            self.bias2 = nn.Parameter(torch.zeros(1))  # before the classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        if self.fixup:
            x = self.relu(self.conv(x) + self.bias1)
            x = self.stage3(self.stage2(self.stage1(x)))
            return self.fc(self.flatten(self.pool(x)) + self.bias2)
        x = self.relu(self.bn(self.conv(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.flatten(self.pool(x)))
