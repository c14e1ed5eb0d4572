"""scripts/prepare_data.py drives the readers of conf/data (no download in tests: --offline)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from emergence.config import group_config
from emergence.data.images import IdxImages
from scripts import prepare_data

ROOT = Path(__file__).resolve().parent.parent
FILES = group_config("data", "fashion_mnist").reader.files


def write_idx(path: Path, array: np.ndarray) -> None:
    head = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(head + array.astype(np.uint8).tobytes()))


def fake_package(folder: Path, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    """The Debian package's layout: the four IDX files gzipped in one folder."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28)),
        "train_y": rng.integers(0, 10, n_train),
        "test_x": rng.integers(0, 256, (n_test, 28, 28)),
        "test_y": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True)
    for k, a in arrays.items():
        write_idx(folder / (FILES[k] + ".gz"), a)
    return arrays


def test_offline_missing_dataset_is_reported_and_fails_only_when_required(tmp_path, capsys):
    assert prepare_data.main(["--root", str(tmp_path), "--datasets", "mnist", "--offline", "--required"]) == 0
    assert "mnist: NOT available (offline)" in capsys.readouterr().err
    assert prepare_data.main(["--root", str(tmp_path), "--datasets", "mnist", "--offline", "--required", "mnist"]) == 1


def test_debian_files_are_decompressed_into_the_readers_layout_then_found_present(tmp_path, monkeypatch, capsys):
    arrays = fake_package(tmp_path / "pkg")
    reader = IdxImages(**{**instantiate(group_config("data", "fashion_mnist").reader).__dict__,
                          "debian_dir": str(tmp_path / "pkg")})  # fmt: skip
    monkeypatch.setattr(prepare_data, "reader", lambda name: reader)
    root = tmp_path / "data"
    assert prepare_data.main(["--root", str(root), "--datasets", "fashion_mnist", "--offline"]) == 0
    assert "decompressed from" in capsys.readouterr().out
    assert sorted(p.name for p in (root / "FashionMNIST" / "raw").iterdir()) == sorted(FILES.values())
    data = reader(root)
    assert data["train_x"].shape == (6, 1, 28, 28) and data["test_y"].dtype == torch.int64
    assert data["train_x"][:, 0].numpy().tolist() == arrays["train_x"].tolist()
    assert prepare_data.main(["--root", str(root), "--datasets", "fashion_mnist", "--offline"]) == 0
    assert "fashion_mnist: present" in capsys.readouterr().out


def test_missing_packages_lists_what_is_not_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare_data, "DEFAULT_SOURCE", str(tmp_path / "no-ding"))
    listed = prepare_data.missing_packages(["fashion_mnist", "mnist"])
    assert "trans-de-en" in listed and "mnist" not in " ".join(listed)
    assert ("dataset-fashion-mnist" in listed) == (not Path("/usr/share/datasets/fashion-mnist").exists())


@pytest.mark.parametrize("name, message", [("nosuch", "no conf/data/nosuch.yaml"), ("digits", "nothing to prepare")])
def test_a_name_without_files_to_prepare_is_a_usage_error(name, message):
    out = subprocess.run([sys.executable, "scripts/prepare_data.py", "--datasets", name, "--offline"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2 and message in out.stderr


def test_task_without_a_reader_says_what_a_reader_is():
    from emergence.tasks.classification import ClassificationTask

    with pytest.raises(ValueError, match="data.reader must be a reader.*conf/data/fashion_mnist.yaml"):
        ClassificationTask("rings", reader={"n_train": 10})
