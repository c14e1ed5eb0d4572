"""CIFAR ResNets of He et al. 2016 (Sec. 4.2, "Deep Residual Learning"): depth 6n+2 with option-A shortcuts.

Layout: conv3x3(16*width) -> [BN] -> ReLU -> 3 stages of n BasicBlocks with 16/32/64 (x width) channels, the first
block of stages 2 and 3 striding by 2 -> global average pool -> Linear(64*width -> num_classes). The weight layers are
1 + 2*3n convs + 1 linear = 6n + 2 = ``depth`` (ResNet-56: 56, ResNet-110: 110), all on the main path, because the
option-A shortcut has no parameters: it subsamples ``x[:, :, ::2, ::2]`` and zero-pads the new channels (half in
front, half behind). This is the layer count PAPER.md Sec. 2 uses for the emergence ramp; GradInit's ResNet-110
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

Example:
    >>> ResNet((3, 32, 32), 10, depth=56)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from emergence.models.cnn import NORMS, check_choice, check_input_shape, check_width, scale_channels

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
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_bn: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not use_bn)
        self.bn1 = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=not use_bn)
        self.bn2 = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ShortcutA(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus shortcut, then the post-addition ReLU."""
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
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 20,
        norm: str = "batch",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        in_ch, _, _ = check_input_shape(input_shape, num_classes)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"arch.depth must be 6n+2 with n >= 1 (e.g. 20, 32, 44, 56, 110); got {depth!r}")
        check_choice("norm", norm, NORMS)
        check_width(width)
        self.depth, self.norm = depth, norm
        n_blocks = (depth - 2) // 6
        use_bn = norm == "batch"
        channels = [scale_channels(c, width) for c in STAGE_CHANNELS]

        self.conv = nn.Conv2d(in_ch, channels[0], 3, padding=1, bias=not use_bn)
        self.bn = nn.BatchNorm2d(channels[0]) if use_bn else nn.Identity()
        self.relu = nn.ReLU()
        prev = channels[0]
        for s, out_ch in enumerate(channels):
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(n_blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks[f"block{b}"] = BasicBlock(prev, out_ch, stride, use_bn)
                prev = out_ch
            self.add_module(f"stage{s + 1}", nn.Sequential(blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(prev, int(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        x = self.relu(self.bn(self.conv(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.flatten(self.pool(x)))
