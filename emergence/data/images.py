"""Image datasets as in-memory uint8 tensors: readers of MNIST-format files, scikit-learn digits, synthetic blobs.

A reader is the ``_target_`` of ``data.reader`` in conf/data/<dataset>.yaml, which holds every fact about where the
dataset's files are and how they are fetched (file names, torchvision's folder and class, the Debian package);
``scripts/prepare_data.py`` (``make data``) reads the same node. Called with the data root, a reader returns
``dict(train_x, train_y, test_x, test_y)`` with images as uint8 N x C x H x W (digits: values 0..16 rescaled to
0..255) and int64 labels.

- ``IdxImages`` (MNIST, Fashion-MNIST): ``<root>/<folder>/raw/`` in torchvision's layout (``*-ubyte`` or
  ``*-ubyte.gz``, written by ``make data``), then the Debian package's folder if it has one. Missing files raise
  FileNotFoundError saying how to get them.
- ``read_digits``: scikit-learn's bundled ``load_digits`` (1797 images of 8x8, no download).
- ``read_synthetic``: class-conditional Gaussian blobs, for smoke runs and tests.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train_x", "train_y", "test_x", "test_y")


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


@dataclass
class IdxImages:
    """An MNIST-format dataset: four IDX files (``files``: split -> file stem) in ``<root>/<folder>/raw`` (the folder
    torchvision's ``datasets.<torchvision>`` downloads into), or gzipped in ``debian_dir`` (package
    ``debian_package``)."""

    name: str
    folder: str
    files: dict = field(default_factory=dict)
    torchvision: str = ""
    debian_package: str | None = None
    debian_dir: str | None = None

    def folders(self, root) -> list[Path]:
        return [Path(root) / self.folder / "raw", *([Path(self.debian_dir)] if self.debian_dir else [])]

    def present(self, root) -> bool:
        """Whether ``root`` holds the files (torchvision's layout; the Debian folder does not count)."""
        return all(_find_idx(self.folders(root)[0], self.files[k]) for k in SPLITS)

    def __call__(self, root) -> dict[str, torch.Tensor]:
        folders = self.folders(root)
        for folder in folders:
            paths = {k: _find_idx(folder, self.files[k]) for k in SPLITS}
            if all(paths.values()):
                out = {k: torch.from_numpy(read_idx(p).copy()) for k, p in paths.items()}
                out["train_x"] = out["train_x"].unsqueeze(1)
                out["test_x"] = out["test_x"].unsqueeze(1)
                out["train_y"], out["test_y"] = out["train_y"].long(), out["test_y"].long()
                return out
        hint = "`make data` (downloads through torchvision when online)"
        if self.debian_package:
            hint += f", or offline `sudo apt-get install {self.debian_package}`"
        raise FileNotFoundError(
            f"{self.name} not found: looked for {[self.files[k] for k in SPLITS]} in {', '.join(map(str, folders))}. "
            f"Get it with {hint}, or point data.root (env EMERGENCE_DATA) at a folder holding {self.folder}/raw/."
        )

    def download(self, root) -> None:
        """Fetch the files with torchvision (needs network and the optional torchvision); raises on any failure."""
        import torchvision.datasets as tvd

        for train in (True, False):
            getattr(tvd, self.torchvision)(str(root), train=train, download=True)

    def from_debian(self, root) -> bool:
        """Decompress the Debian package's files into ``<root>/<folder>/raw``; False if the package is missing."""
        src = Path(self.debian_dir) if self.debian_dir else None
        if src is None or not all((src / (self.files[k] + ".gz")).is_file() for k in SPLITS):
            return False
        out = self.folders(root)[0]
        out.mkdir(parents=True, exist_ok=True)
        for k in SPLITS:
            with gzip.open(src / (self.files[k] + ".gz"), "rb") as f, open(out / self.files[k], "wb") as dst:
                shutil.copyfileobj(f, dst)
        return True


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
