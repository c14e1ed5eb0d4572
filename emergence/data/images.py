"""Image datasets as in-memory uint8 tensors: Fashion-MNIST, MNIST, scikit-learn digits, synthetic.

Each reader returns ``dict(train_x, train_y, test_x, test_y)`` with images as uint8 N x C x H x W (digits: values
0..16 rescaled to 0..255) and int64 labels. Where files are looked for:

- MNIST / Fashion-MNIST: ``<root>/<MNIST|FashionMNIST>/raw/`` in torchvision's layout (``*-ubyte`` or ``*-ubyte.gz``,
  written by ``make data``), then, for Fashion-MNIST, the Debian package ``dataset-fashion-mnist``
  (/usr/share/datasets/fashion-mnist). Missing files raise FileNotFoundError saying how to get them.
- digits: scikit-learn's bundled ``load_digits`` (1797 images of 8x8, no download).
- synthetic: class-conditional Gaussian blobs, for smoke runs and tests.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic, dims, then uint8 data."""
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_mnist_like(name: str, root: str | Path) -> dict[str, torch.Tensor]:
    """MNIST or Fashion-MNIST from the torchvision raw folder under ``root`` or the Debian package."""
    folders = [Path(root) / TORCHVISION_FOLDERS[name] / "raw"]
    if name == "fashion_mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    for folder in folders:
        paths = {k: _find_idx(folder, stem) for k, stem in IDX_FILES.items()}
        if all(paths.values()):
            out = {k: torch.from_numpy(read_idx(p).copy()) for k, p in paths.items()}
            out["train_x"] = out["train_x"].unsqueeze(1)
            out["test_x"] = out["test_x"].unsqueeze(1)
            out["train_y"], out["test_y"] = out["train_y"].long(), out["test_y"].long()
            return out
    hint = "`make data` (downloads through torchvision when online)"
    if name == "fashion_mnist":
        hint += ", or offline `sudo apt-get install dataset-fashion-mnist`"
    raise FileNotFoundError(
        f"{name} not found: looked for {list(IDX_FILES.values())} in {', '.join(map(str, folders))}. Get it with {hint}, "
        f"or point data.root (env EMERGENCE_DATA) at a folder holding {TORCHVISION_FOLDERS[name]}/raw/."
    )


def read_digits(root=None) -> dict[str, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits; a fixed 1497/300 train/test split (seed 0)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target).long()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    test, train = perm[:300], perm[300:]
    return {"train_x": x[train], "train_y": y[train], "test_x": x[test], "test_y": y[test]}


def read_synthetic(
    root=None, n_train: int = 2048, n_test: int = 512, num_classes: int = 10, shape=(1, 8, 8), seed: int = 0
) -> dict[str, torch.Tensor]:
    """Gaussian blobs around one random prototype image per class, clipped to uint8: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(num_classes, *shape, generator=g) * 255

    def draw(n):
        y = torch.randint(num_classes, (n,), generator=g)
        x = protos[y] + 60 * torch.randn(n, *shape, generator=g)
        return x.clamp(0, 255).round().to(torch.uint8), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def read_cifar(name: str, root, download: bool = False) -> dict[str, torch.Tensor]:
    from emergence.data.cifar import load_cifar

    return load_cifar(root, name=name, download=download)


READERS = {
    "fashion_mnist": lambda root, **kw: read_mnist_like("fashion_mnist", root),
    "mnist": lambda root, **kw: read_mnist_like("mnist", root),
    "digits": lambda root, **kw: read_digits(root),
    "synthetic": lambda root, **kw: read_synthetic(root, **kw),
    "cifar10": lambda root, **kw: read_cifar("cifar10", root, **kw),
    "cifar100": lambda root, **kw: read_cifar("cifar100", root, **kw),
}
