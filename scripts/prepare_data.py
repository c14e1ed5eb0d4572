"""Prepare image datasets under the data dir (``make data``), from the facts in their conf/data files.

Each dataset's reader (``data.reader`` in conf/data/<dataset>.yaml, emergence/data/images.py) knows where its files
go and how to get them; this script only drives it: nothing to do if ``<root>`` already holds the files; otherwise
download through torchvision when online; otherwise decompress the dataset's Debian package, if it has one, into the
same layout. A dataset that cannot be obtained gets a message saying how to get it; the exit code is non-zero only if
a ``--required`` dataset is missing. ``--missing-packages`` prints the Debian packages (of these datasets, and
trans-de-en for the Ding corpus) whose files are not installed, for ``make system-data``.

    python scripts/prepare_data.py --root data --datasets fashion_mnist mnist --required fashion_mnist
    python scripts/prepare_data.py --missing-packages --datasets fashion_mnist
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from hydra.utils import instantiate

from emergence.config import CONF_DIR, group_config
from emergence.data.corpus import DING_PACKAGE as DEBIAN_PACKAGE
from emergence.data.corpus import DING_SOURCE as DEFAULT_SOURCE


def reader(name: str):
    """The reader of conf/data/<name>.yaml; SystemExit (2) if it is not a dataset with files to prepare."""
    if not (CONF_DIR / "data" / f"{name}.yaml").is_file():
        return usage_error(f"[data] unknown dataset {name!r}: no conf/data/{name}.yaml")
    node = group_config("data", name).get("reader")
    read = instantiate(node) if node is not None else None
    if not hasattr(read, "present"):
        return usage_error(f"[data] {name}: nothing to prepare (its reader does not read files); leave it out")
    return read


def usage_error(message: str):
    print(message, file=sys.stderr)
    raise SystemExit(2)


def download(read, root: Path) -> str | None:
    """Try the reader's (torchvision) download; returns an error text or None."""
    socket.setdefaulttimeout(20)
    try:
        read.download(root)
        return None
    except Exception as exc:  # no network, no torchvision, a server error: fall back below
        return f"{type(exc).__name__}: {exc}"


def missing_packages(names: list[str]) -> list[str]:
    packages = [(r.debian_package, r.debian_dir) for r in map(reader, names) if getattr(r, "debian_package", None)]
    return [pkg for pkg, path in [*packages, (DEBIAN_PACKAGE, DEFAULT_SOURCE)] if not Path(path).exists()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data")
    ap.add_argument("--datasets", nargs="+", default=["fashion_mnist", "mnist"], help="names of conf/data files")
    ap.add_argument("--required", nargs="*", default=["fashion_mnist"])
    ap.add_argument("--offline", action="store_true", help="do not try to download")
    ap.add_argument("--missing-packages", action="store_true", help="print the Debian packages not installed")
    args = ap.parse_args(argv)
    if args.missing_packages:
        print(" ".join(missing_packages(args.datasets)))
        return 0
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    missing = []
    for name in args.datasets:
        read = reader(name)
        if read.present(root):
            print(f"[data] {name}: present in {root}")
            continue
        error = "offline" if args.offline else download(read, root)
        if error is None and read.present(root):
            print(f"[data] {name}: downloaded to {root}")
            continue
        if read.from_debian(root):
            read(root)  # check it parses
            print(f"[data] {name}: decompressed from {read.debian_dir} into {root}/{read.folder}/raw")
            continue
        hint = "run `make data` on a machine with network access"
        if getattr(read, "debian_package", None):
            hint += f", or `apt-get install {read.debian_package}` (offline)"
        print(f"[data] {name}: NOT available ({error}); {hint}", file=sys.stderr)
        missing.append(name)
    required_missing = [m for m in missing if m in (args.required or [])]
    if required_missing:
        print(f"[data] required datasets missing: {required_missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
