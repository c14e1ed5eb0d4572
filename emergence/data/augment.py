"""Batched, on-device CIFAR training augmentation: random crop, horizontal flip, normalization, cutout.

Reproduces the CIFAR recipe of GradInit (zhuchen03/gradinit ``train_cifar.py``; docs/method.md#training-recipes):
``RandomCrop(32, padding=4) -> RandomHorizontalFlip -> ToTensor -> Normalize(mean, std) -> Cutout(1 hole, 16 px)``,
but on a whole ``N x C x H x W`` batch already on the training device, with no PIL and no per-image Python loop.
Every random draw comes from an explicit ``torch.Generator``, so the same seed gives the same batch.

Order and fill values follow the reference code:
- Crop and flip act on unnormalized images, so the crop's zero padding is black (as torchvision pads the PIL image
  with 0 before ``ToTensor``).
- Cutout comes *after* normalization, as in GradInit and DeVries & Taylor 2017 (``Cutout`` appended after
  ``Normalize``), so the hole is 0 in normalized space, i.e. the dataset-mean colour. With ``mean=None`` no
  normalization happens and the hole is 0 in whatever space the input is in.
- The cutout square is ``size`` px on a side, its centre uniform over all pixels, clipped at the borders (DeVries &
  Taylor). For odd ``size`` the square is exactly ``size`` px centred on that pixel (the reference code cuts
  ``size - 1``); for even ``size`` both agree.

Generators: pass a ``torch.Generator`` on ``x``'s device, or a CPU generator (the draws are then moved to ``x``'s
device; this is the deterministic choice when runs must match across CPU and GPU). ``None`` uses the global RNG.
The three steps of `Augment` draw in a fixed order (crop offsets, flip coins, cutout centres).

Example:
    >>> aug = Augment(crop_padding=4, flip=True, cutout=16, mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))
    >>> g = torch.Generator().manual_seed(0)
    >>> x = aug(torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8), g)  # float32, normalized
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected an N x C x H x W batch; got shape {tuple(x.shape)}")


def _is_identity(x: torch.Tensor, size: int, name: str) -> bool:
    """Check the batch and a size argument (``name`` >= 0); True when it is 0, i.e. the transform changes nothing."""
    _check_batch(x)
    if size < 0:
        raise ValueError(f"{name} must be >= 0; got {size}")
    return size == 0


def _randint(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` integers uniform in ``[0, high)``, drawn on the generator's device and moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=gen_device).to(device)


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` floats uniform in ``[0, 1)``, drawn on the generator's device and moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand((n,), generator=generator, device=gen_device).to(device)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1] (like ``ToTensor``); floating input is returned unchanged."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise TypeError(f"expected uint8 or floating-point images; got {x.dtype}")
    return x


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad each side by ``padding`` and crop back to ``H x W`` at a per-sample random offset.

    Args:
        x: batch ``N x C x H x W`` (any dtype).
        padding: pixels of zero padding per side; offsets are uniform in ``[0, 2*padding]`` on each axis.
        generator: source of the offsets.

    Returns:
        A new batch of the same shape and dtype; sample ``n`` is ``pad(x)[n, :, dy:dy+H, dx:dx+W]``.
    """
    if _is_identity(x, padding, "padding"):
        return x.clone()
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = _randint(2 * padding + 1, n, generator, x.device)
    dx = _randint(2 * padding + 1, n, generator, x.device)
    hp, wp = h + 2 * padding, w + 2 * padding
    rows = dy[:, None, None] + torch.arange(h, device=x.device)[None, :, None]  # N x H x 1
    cols = dx[:, None, None] + torch.arange(w, device=x.device)[None, None, :]  # N x 1 x W
    # One gather over the flattened padded image (same window for every channel) instead of per-image slicing.
    index = (rows * wp + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, hp * wp).gather(2, index).reshape(n, c, h, w)


def hflip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Flip each sample left-right with probability ``p``, independently.

    Args:
        x: batch ``N x C x H x W``.
        generator: source of the coin flips.
        p: flip probability.

    Returns:
        A new batch; flipped samples equal ``x[n].flip(-1)``, the others equal ``x[n]``.
    """
    _check_batch(x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1]; got {p}")
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one ``size x size`` square per image (DeVries & Taylor 2017), centre uniform, clipped at the borders.

    Args:
        x: batch ``N x C x H x W``; the square is zeroed in every channel.
        size: side of the square in pixels; 0 returns a copy of ``x``.
        generator: source of the centres.

    Returns:
        A new batch; rows ``[cy - size//2, cy - size//2 + size)`` x the same columns around ``cx`` are 0.
    """
    if _is_identity(x, size, "size"):
        return x.clone()
    n, _, h, w = x.shape
    cy = _randint(h, n, generator, x.device)
    cx = _randint(w, n, generator, x.device)
    y0, x0 = cy - size // 2, cx - size // 2
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    # Comparing against the unclipped bounds clips the square at the borders for free.
    in_y = (ys >= y0[:, None]) & (ys < (y0 + size)[:, None])  # N x H
    in_x = (xs >= x0[:, None]) & (xs < (x0 + size)[:, None])  # N x W
    hole = in_y[:, :, None] & in_x[:, None, :]  # N x H x W
    return x.masked_fill(hole[:, None], 0)


def normalize(
    x: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Per-channel ``(x - mean) / std`` on a floating-point batch ``N x C x H x W``."""
    _check_batch(x)
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    if mean_t.shape[1] != x.shape[1] or std_t.shape[1] != x.shape[1]:
        raise ValueError(f"mean/std need one value per channel ({x.shape[1]}); got {mean_t.shape[1]}/{std_t.shape[1]}")
    return (x - mean_t) / std_t


class Augment:
    """Training augmentation for a batch: crop -> flip -> (uint8 to [0, 1] float) -> normalize -> cutout.

    Args:
        crop_padding: zero padding of the random crop; 0 turns the crop off.
        flip: random horizontal flip with probability 0.5.
        cutout: side of the cutout square; 0 turns cutout off.
        mean: per-channel mean for normalization (in [0, 1] units); ``None`` skips normalization.
        std: per-channel std; given together with ``mean``.
    """

    def __init__(
        self,
        crop_padding: int = 4,
        flip: bool = True,
        cutout: int = 16,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0; got {crop_padding}")
        if cutout < 0:
            raise ValueError(f"cutout must be >= 0 (0 = off); got {cutout}")
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (or both None to skip normalization)")
        if std is not None and min(std) <= 0:
            raise ValueError(f"std must be positive; got {tuple(std)}")
        self.crop_padding, self.flip, self.cutout = int(crop_padding), bool(flip), int(cutout)
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a uint8 ([0, 255]) or float batch ``N x C x H x W``; returns a new float batch (uint8 -> /255)."""
        if not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise TypeError(f"expected uint8 or floating-point images; got {x.dtype}")
        # Crop and flip only move pixels, so on uint8 input they run on 1-byte values before the float conversion.
        if self.crop_padding > 0:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = hflip(x, generator)
        x = to_float(x)
        if self.mean is not None:
            x = normalize(x, self.mean, self.std)
        if self.cutout > 0:
            x = cutout(x, self.cutout, generator)
        return x

    def __repr__(self) -> str:
        return (
            f"Augment(crop_padding={self.crop_padding}, flip={self.flip}, cutout={self.cutout}, "
            f"mean={self.mean}, std={self.std})"
        )
