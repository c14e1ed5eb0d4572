"""Benchmark: batched on-device `Augment` vs a torchvision PIL-transform DataLoader, CIFAR-shaped data.

Both pipelines produce the GradInit CIFAR training batch (docs/method.md): random crop (pad 4), horizontal flip,
ToTensor + Normalize, cutout 16 px. The PIL side is what ``train_cifar.py`` does per image in a DataLoader
(``num_workers`` 0 and 2); the batched side indexes a shuffled batch out of an in-memory uint8 tensor and runs
`emergence.data.augment.Augment` on it. The data are the same random uint8 images for both. Each figure is one full
pass over ``--batches`` batches, interleaved repeats, medians; DataLoader passes include worker start-up
(non-persistent workers, as in a plain per-epoch loop). Needs torchvision (the ``vision`` extra).

    python -m scripts.bench.augment [--batch 128] [--batches 20] [--repeats 5] [--device cpu|cuda|auto] [--threads 0]
    python -m scripts.bench.augment --smoke
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from emergence.data.augment import Augment
from scripts.bench.timing import Report, clock, common_args, interleave, setup

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


class PILImages(Dataset):
    """Random uint8 HWC images served as PIL images, like torchvision's CIFAR10.__getitem__."""

    def __init__(self, images_hwc: np.ndarray, transform: transforms.Compose) -> None:
        self.images, self.transform = images_hwc, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), 0


class CutoutPerImage:
    """One zeroed square per C x H x W tensor, centre uniform, clipped (DeVries & Taylor 2017), per image."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[1:]
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, x0 = max(cy - self.size // 2, 0), max(cx - self.size // 2, 0)
        img = img.clone()
        img[:, y0 : cy - self.size // 2 + self.size, x0 : cx - self.size // 2 + self.size] = 0
        return img


def loader_pass(images_hwc: np.ndarray, batch: int, workers: int):
    """One pass of a DataLoader with per-image PIL transforms (a callable for ``interleave``)."""
    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
            CutoutPerImage(16),
        ]
    )
    loader = DataLoader(PILImages(images_hwc, tf), batch_size=batch, shuffle=True, num_workers=workers)

    def one_pass() -> None:
        for _batch in loader:
            pass

    return one_pass


def batched_pass(images: torch.Tensor, batch: int, device: torch.device):
    """One pass of shuffled-batch indexing plus `Augment` on ``device`` (timed with a device sync)."""
    aug = Augment(crop_padding=4, flip=True, cutout=16, mean=MEAN, std=STD)
    data = images.to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def one_pass() -> None:
        perm = torch.randperm(len(data), generator=gen, device=device)
        for i in range(0, len(data), batch):
            aug(data[perm[i : i + batch]], gen)

    one_pass()  # warm-up (allocator, kernels)
    return lambda: clock(one_pass, device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--device", default="auto", help="extra device for the batched pipeline: cpu, cuda, auto")
    common_args(parser, repeats=5, threads=0)
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch, args.batches = 16, 2
    setup(args)

    n = args.batch * args.batches
    rng = np.random.default_rng(0)
    images_hwc = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images = torch.from_numpy(images_hwc).permute(0, 3, 1, 2).contiguous()  # same pixels, N x C x H x W
    variants = {
        "DataLoader + PIL transforms, num_workers=0": loader_pass(images_hwc, args.batch, 0),
        "DataLoader + PIL transforms, num_workers=2": loader_pass(images_hwc, args.batch, 2),
        "batched Augment, cpu": batched_pass(images, args.batch, torch.device("cpu")),
    }
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        variants["batched Augment, cuda"] = batched_pass(images, args.batch, torch.device("cuda"))
    stats = interleave(variants, args.repeats)

    report = Report(
        "Batch augmentation: on-device Augment vs torchvision DataLoader",
        ["pipeline", "s/pass", "samples/s", "vs workers=0", "spread"],
        setting=f"{n} CIFAR-shaped images, batch {args.batch}, {args.repeats} interleaved repeats, medians",
    )
    base = stats["DataLoader + PIL transforms, num_workers=0"].median
    for name, s in stats.items():
        report.add(name, f"{s.median:.3f}", f"{n / s.median:.0f}", f"{base / s.median:.1f}x", f"{100 * s.spread:.0f} %")
    w2, cpu = stats["DataLoader + PIL transforms, num_workers=2"].median, stats["batched Augment, cpu"].median
    report.note(f"batched Augment (cpu) vs DataLoader workers=2: {w2 / cpu:.1f}x")
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
