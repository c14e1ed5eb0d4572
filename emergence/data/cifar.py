"""CIFAR-10/100 as whole uint8 tensors, for on-device augmentation (`emergence.data.augment`).

`CifarPickles` is the reader of conf/data/cifar10.yaml and cifar100.yaml (``data.reader``, which holds the folder,
file names, label keys and archive; emergence/data/images.py says what a reader is). It reads the python-pickle
release of CIFAR (the ``cifar-10-batches-py`` / ``cifar-100-python`` folders that torchvision's ``CIFAR10``/
``CIFAR100`` download and use) into ``N x 3 x 32 x 32`` uint8 tensors, with no per-image transform. Normalization
constants (docs/method.md#training-recipes, GradInit ``train_cifar.py``) stay here, in ``NORMALIZATION``: they change
a run's result and no data hash covers them, so they are not part of the (result-neutral) reader config.
- CIFAR-10: mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010). These std values are the widely copied
  ones (not the pixel std of the training set, which is about (0.247, 0.243, 0.261)); kept to match the recipe.
- CIFAR-100: the standard mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762).

Why the batches are read here and not through torchvision: torchvision's ``CIFAR10(download=False)`` checks the md5
of every file, so it refuses anything but the exact original files (a test fixture, a re-pickled copy), and reading
``.data`` goes through its per-dataset constructor anyway. This module therefore unpickles the files itself (same
format: a dict with ``data`` as ``n x 3072`` uint8 rows in CHW order and ``labels``/``fine_labels``) and checks
shapes and label ranges instead of md5 sums. torchvision (the optional ``vision`` extra) is used only by
``download``, which fetches and extracts the archive and verifies its md5.

Example:
    >>> data = instantiate(group_config("data", "cifar10").reader)("data")
    >>> data["train_x"].shape, data["train_x"].dtype
    (torch.Size([50000, 3, 32, 32]), torch.uint8)
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


NORMALIZATION = {  # name -> (mean, std) in [0, 1] pixel units, for `emergence.data.augment.normalize`
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass
class CifarPickles:
    """One CIFAR release: ``train_files``/``test_files``/``meta_file`` in ``<root>/<folder>``, labels under
    ``label_key``, class names under ``meta_key``; torchvision's ``datasets.<torchvision>`` downloads ``archive``."""

    name: str
    folder: str
    train_files: Sequence[str]
    test_files: Sequence[str]
    meta_file: str
    meta_key: str
    label_key: str
    num_classes: int
    torchvision: str
    archive: str

    def __post_init__(self) -> None:
        if self.name not in NORMALIZATION:
            raise ValueError(f"data.dataset must be one of {', '.join(map(repr, NORMALIZATION))}; got {self.name!r}")

    def present(self, root) -> bool:
        return not _missing_files(os.path.join(os.fspath(root), self.folder), self)

    def download(self, root) -> None:
        """Fetch and extract the archive with torchvision; raises on any failure."""
        import torchvision.datasets  # optional dependency, only needed to download

        getattr(torchvision.datasets, self.torchvision)(os.fspath(root), train=True, download=True)

    def from_debian(self, root) -> bool:
        return False  # no Debian package

    def __call__(self, root, download: bool = False) -> dict:
        """Load from ``<root>/<folder>/`` as uint8 tensors.

        Args:
            root: directory that holds (or will hold) ``cifar-10-batches-py/`` or ``cifar-100-python/``.
            download: fetch the archive with torchvision when files are missing (needs network).

        Returns:
            ``train_x``/``test_x`` (uint8, ``N x 3 x 32 x 32``), ``train_y``/``test_y`` (int64), ``mean``/``std``
            (3-tuples in [0, 1] pixel units), ``classes`` (list of label names).

        Raises:
            FileNotFoundError: files missing and ``download`` is False or the download failed; the message says
                where it looked and how to get the data.
        """
        return _load(self, os.fspath(root), download)


def _missing_files(folder: str, spec: CifarPickles) -> list[str]:
    names = (*spec.train_files, *spec.test_files, spec.meta_file)
    return [n for n in names if not os.path.isfile(os.path.join(folder, n))]


def _unpickle(path: str) -> dict:
    with open(path, "rb") as f:
        # latin1 reads the Python-2 pickles of the original release (byte strings as str).
        return pickle.load(f, encoding="latin1")


def _read_split(folder: str, files: tuple[str, ...], spec: CifarPickles) -> tuple[torch.Tensor, torch.Tensor]:
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


def _load(spec: CifarPickles, root: str, download: bool) -> dict:
    name = spec.name
    folder = os.path.join(root, spec.folder)
    missing = _missing_files(folder, spec)
    download_error = None
    if missing and download:
        try:
            spec.download(root)
        except Exception as err:  # noqa: BLE001 - any failure (no network, no torchvision) becomes the hint below
            download_error = err
        missing = _missing_files(folder, spec)
    if missing:
        why = f" Download failed: {download_error!r}." if download_error is not None else ""
        raise FileNotFoundError(
            f"{name} not found: {folder} lacks {', '.join(missing)}.{why} To get it, run `make data` on a machine "
            f"with network access (or call the reader with download=True), or put the `{spec.folder}` folder of "
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
        "mean": NORMALIZATION[name][0],
        "std": NORMALIZATION[name][1],
        "classes": list(meta[spec.meta_key]),
    }
