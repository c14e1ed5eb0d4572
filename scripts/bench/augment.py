"""Benchmark: batched on-device `Augment` vs a torchvision PIL-transform DataLoader, CIFAR-shaped data.

Both pipelines produce the GradInit CIFAR training batch (PAPER.md Sec. 6): random crop (pad 4), horizontal flip,
ToTensor + Normalize, cutout 16 px. The PIL side is what ``train_cifar.py`` does per image in a DataLoader
(``num_workers`` 0 and 2); the batched side indexes a shuffled batch out of an in-memory uint8 tensor and runs
`emergence.data.augment.Augment` on it. The data are the same random uint8 images for both. Each figure is the best of
``--repeats`` full passes over ``--batches`` batches; DataLoader passes include worker start-up (non-persistent
workers, as in a plain per-epoch loop). Uses torch's default thread count. Needs torchvision (the ``vision`` extra).

Usage:
    python scripts/bench_augment.py [--batch 128] [--batches 20] [--repeats 3] [--device cpu|cuda|auto] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from emergence.data.augment import Augment

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


def time_loader(images_hwc: np.ndarray, batch: int, workers: int, repeats: int) -> float:
    """Best wall time (s) of one pass of a DataLoader with per-image PIL transforms."""
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
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _batch in loader:
            pass
        best = min(best, time.perf_counter() - start)
    return best


def time_batched(images: torch.Tensor, batch: int, repeats: int, device: torch.device) -> float:
    """Best wall time (s) of one pass of shuffled-batch indexing plus `Augment` on ``device``."""
    aug = Augment(crop_padding=4, flip=True, cutout=16, mean=MEAN, std=STD)
    data = images.to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def one_pass() -> None:
        perm = torch.randperm(len(data), generator=gen, device=device)
        for i in range(0, len(data), batch):
            aug(data[perm[i : i + batch]], gen)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    one_pass()  # warm-up (allocator, kernels)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="extra device for the batched pipeline: cpu, cuda, auto")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 keeps torch's default")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    n = args.batch * args.batches
    rng = np.random.default_rng(0)
    images_hwc = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images = torch.from_numpy(images_hwc).permute(0, 3, 1, 2).contiguous()  # same pixels, N x C x H x W

    rows = [
        ("DataLoader + PIL transforms, num_workers=0", time_loader(images_hwc, args.batch, 0, args.repeats)),
        ("DataLoader + PIL transforms, num_workers=2", time_loader(images_hwc, args.batch, 2, args.repeats)),
        ("batched Augment, cpu", time_batched(images, args.batch, args.repeats, torch.device("cpu"))),
    ]
    want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if want_cuda:
        rows.append(("batched Augment, cuda", time_batched(images, args.batch, args.repeats, torch.device("cuda"))))

    threads = torch.get_num_threads()
    print(f"{n} CIFAR-shaped images, batch {args.batch}, torch threads {threads}, best of {args.repeats}")
    print(f"| {'pipeline':<44} | {'s/pass':>7} | {'samples/s':>10} | {'vs workers=0':>12} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 12}|{'-' * 14}|")
    base = rows[0][1]
    for name, secs in rows:
        print(f"| {name:<44} | {secs:7.3f} | {n / secs:10.0f} | {base / secs:11.1f}x |")
    print(f"batched Augment (cpu) vs DataLoader workers=2: {rows[1][1] / rows[2][1]:.1f}x")


if __name__ == "__main__":
    main()
