"""CIFAR-10/100 as whole uint8 tensors, for on-device augmentation (`emergence.data.augment`).

`load_cifar` reads the python-pickle release of CIFAR (the ``cifar-10-batches-py`` / ``cifar-100-python`` folders
that torchvision's ``CIFAR10``/``CIFAR100`` download and use) into ``N x 3 x 32 x 32`` uint8 tensors, with no
per-image transform. Normalization constants (docs/method.md#training-recipes, GradInit ``train_cifar.py``):
- CIFAR-10: mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010). These std values are the widely copied
  ones (not the pixel std of the training set, which is about (0.247, 0.243, 0.261)); kept to match the recipe.
- CIFAR-100: the standard mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762).

Why the batches are read here and not through torchvision: torchvision's ``CIFAR10(download=False)`` checks the md5
of every file, so it refuses anything but the exact original files (a test fixture, a re-pickled copy), and reading
``.data`` goes through its per-dataset constructor anyway. This module therefore unpickles the files itself (same
format: a dict with ``data`` as ``n x 3072`` uint8 rows in CHW order and ``labels``/``fine_labels``) and checks
shapes and label ranges instead of md5 sums. torchvision (the optional ``vision`` extra) is used only for
``download=True``, which fetches and extracts the archive and verifies its md5.

Example:
    >>> data = load_cifar("data", "cifar10", download=False)
    >>> data["train_x"].shape, data["train_x"].dtype
    (torch.Size([50000, 3, 32, 32]), torch.uint8)
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class _Spec:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    meta_key: str
    label_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    torchvision_class: str
    archive: str


SPECS = {
    "cifar10": _Spec(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        meta_key="label_names",
        label_key="labels",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        torchvision_class="CIFAR10",
        archive="cifar-10-python.tar.gz",
    ),
    "cifar100": _Spec(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        meta_key="fine_label_names",
        label_key="fine_labels",
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        torchvision_class="CIFAR100",
        archive="cifar-100-python.tar.gz",
    ),
}


def _missing_files(folder: str, spec: _Spec) -> list[str]:
    names = (*spec.train_files, *spec.test_files, spec.meta_file)
    return [n for n in names if not os.path.isfile(os.path.join(folder, n))]


def _unpickle(path: str) -> dict:
    with open(path, "rb") as f:
        # latin1 reads the Python-2 pickles of the original release (byte strings as str).
        return pickle.load(f, encoding="latin1")


def _read_split(folder: str, files: tuple[str, ...], spec: _Spec) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in files:
        path = os.path.join(folder, name)
        entry = _unpickle(path)
        data = np.asarray(entry["data"], dtype=np.uint8)
        targets = np.asarray(entry[spec.label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(targets) != len(data):
            raise ValueError(
                f"{path}: expected 'data' of shape (n, 3072) and n labels; got {data.shape}, {len(targets)}"
            )
        if len(targets) and (targets.min() < 0 or targets.max() >= spec.num_classes):
            raise ValueError(f"{path}: labels outside [0, {spec.num_classes})")
        images.append(data)
        labels.append(targets)
    # Rows are stored channel-major (1024 R, 1024 G, 1024 B), so a reshape gives N x 3 x 32 x 32 directly.
    x = torch.from_numpy(np.concatenate(images).reshape(-1, 3, 32, 32))
    y = torch.from_numpy(np.concatenate(labels))
    return x, y


def _download(root: str, spec: _Spec) -> None:
    """Fetch and extract the archive with torchvision; raises on any failure."""
    import torchvision.datasets  # optional dependency, only needed to download

    getattr(torchvision.datasets, spec.torchvision_class)(root, train=True, download=True)


def load_cifar(root: str, name: str = "cifar10", download: bool = False) -> dict:
    """Load CIFAR-10 or CIFAR-100 from ``<root>/<cifar folder>/`` as uint8 tensors.

    Args:
        root: directory that holds (or will hold) ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: ``"cifar10"`` or ``"cifar100"``.
        download: fetch the archive with torchvision when files are missing (needs network).

    Returns:
        ``train_x``/``test_x`` (uint8, ``N x 3 x 32 x 32``), ``train_y``/``test_y`` (int64), ``mean``/``std`` (3-tuples
        in [0, 1] pixel units, for `emergence.data.augment.normalize`), ``classes`` (list of label names).

    Raises:
        FileNotFoundError: files missing and ``download`` is False or the download failed; the message says where it
            looked and how to get the data.
    """
    if name not in SPECS:
        raise ValueError(f"data.name must be one of {', '.join(repr(k) for k in SPECS)}; got {name!r}")
    spec = SPECS[name]
    root = os.fspath(root)
    folder = os.path.join(root, spec.folder)
    missing = _missing_files(folder, spec)
    download_error = None
    if missing and download:
        try:
            _download(root, spec)
        except Exception as err:  # noqa: BLE001 - any failure (no network, no torchvision) becomes the hint below
            download_error = err
        missing = _missing_files(folder, spec)
    if missing:
        why = f" Download failed: {download_error!r}." if download_error is not None else ""
        raise FileNotFoundError(
            f"{name} not found: {folder} lacks {', '.join(missing)}.{why} To get it, run `make data` on a machine "
            f"with network access (or call load_cifar(..., download=True)), or put the `{spec.folder}` folder of "
            f"{spec.archive} into {root}/, e.g. `tar xzf {spec.archive} -C {root}`"
        )

    train_x, train_y = _read_split(folder, spec.train_files, spec)
    test_x, test_y = _read_split(folder, spec.test_files, spec)
    meta = _unpickle(os.path.join(folder, spec.meta_file))
    return {
        "train_x": train_x,
        "train_y": train_y,
        "test_x": test_x,
        "test_y": test_y,
        "mean": spec.mean,
        "std": spec.std,
        "classes": list(meta[spec.meta_key]),
    }
