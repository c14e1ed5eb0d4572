"""Prepare image datasets under the data dir (``make data``).

For each requested dataset: nothing to do if ``<root>/<Folder>/raw`` (torchvision layout) already holds it; otherwise
download through torchvision when online; otherwise, for Fashion-MNIST, decompress the Debian package
``dataset-fashion-mnist`` into the same layout. A dataset that cannot be obtained gets a message saying how to get it;
the exit code is non-zero only if a ``--required`` dataset is missing.

    python scripts/prepare_data.py --root data --datasets fashion_mnist mnist --required fashion_mnist
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import socket
import sys
from pathlib import Path

from emergence.data.images import DEBIAN_FASHION_MNIST, IDX_FILES, TORCHVISION_FOLDERS, read_mnist_like

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def have(name: str, root: Path) -> bool:
    if name in CIFAR_FOLDERS:
        return (root / CIFAR_FOLDERS[name]).is_dir()
    try:
        folder = root / TORCHVISION_FOLDERS[name] / "raw"
        return all((folder / f).exists() or (folder / (f + ".gz")).exists() for f in IDX_FILES.values())
    except KeyError:
        return False


def download(name: str, root: Path) -> str | None:
    """Try torchvision's download; returns an error text or None."""
    socket.setdefaulttimeout(20)
    try:
        import torchvision.datasets as tvd

        cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}
        cls[name](str(root), train=True, download=True)
        cls[name](str(root), train=False, download=True)
        return None
    except Exception as exc:  # no network, no torchvision, a server error: fall back below
        return f"{type(exc).__name__}: {exc}"


def from_debian(root: Path) -> bool:
    if not all((DEBIAN_FASHION_MNIST / (f + ".gz")).is_file() for f in IDX_FILES.values()):
        return False
    out = root / "FashionMNIST" / "raw"
    out.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        with gzip.open(DEBIAN_FASHION_MNIST / (stem + ".gz"), "rb") as src, open(out / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data")
    ap.add_argument(
        "--datasets",
        nargs="+",
        default=["fashion_mnist", "mnist"],
        choices=["fashion_mnist", "mnist", "cifar10", "cifar100"],
    )
    ap.add_argument("--required", nargs="*", default=["fashion_mnist"])
    ap.add_argument("--offline", action="store_true", help="do not try to download")
    args = ap.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    missing = []
    for name in args.datasets:
        if have(name, root):
            print(f"[data] {name}: present in {root}")
            continue
        error = "offline" if args.offline else download(name, root)
        if error is None and have(name, root):
            print(f"[data] {name}: downloaded to {root}")
            continue
        if name == "fashion_mnist" and from_debian(root):
            read_mnist_like("fashion_mnist", root)  # check it parses
            print(f"[data] fashion_mnist: decompressed from {DEBIAN_FASHION_MNIST} into {root}/FashionMNIST/raw")
            continue
        hint = "run `make data` on a machine with network access"
        if name == "fashion_mnist":
            hint += ", or `apt-get install dataset-fashion-mnist` (offline)"
        print(f"[data] {name}: NOT available ({error}); {hint}", file=sys.stderr)
        missing.append(name)
    required_missing = [m for m in missing if m in (args.required or [])]
    if required_missing:
        print(f"[data] required datasets missing: {required_missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
