"""Tests for the batched augmentation (crop, flip, cutout, normalize, Augment) and the CIFAR pickle loader.

No download happens: the CIFAR tests write tiny fake folders in the python-pickle format into ``tmp_path``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from emergence.config import group_config
from emergence.data.augment import Augment, cutout, hflip, normalize, random_crop
from emergence.data.cifar import CifarPickles

torch.set_num_threads(1)

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def positive_batch(n: int = 16, c: int = 3, h: int = 12, w: int = 10) -> torch.Tensor:
    """Random batch with no zeros, so zeroed pixels are visible."""
    return torch.rand(n, c, h, w, generator=gen(123)) + 0.5


# ---------------------------------------------------------------- random crop


def test_random_crop_output_is_a_shifted_window_of_the_zero_padded_input() -> None:
    x, pad = positive_batch(), 3
    out = random_crop(x, pad, gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[2:]
    offsets = []
    for n in range(x.shape[0]):
        hits = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[n], padded[n, :, dy : dy + h, dx : dx + w])
        ]
        assert len(hits) == 1, f"sample {n} is not a window of the padded input"
        offsets.append(hits[0])
    assert len(set(offsets)) > 3  # per-sample offsets, not one shared shift


def test_random_crop_with_zero_padding_is_identity_and_uint8_works() -> None:
    x = torch.randint(1, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(random_crop(x, 0, gen(0)), x)
    out = random_crop(x, 4, gen(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape


# ---------------------------------------------------------------- flip


def test_hflip_is_exact_flip_or_identity_per_sample_with_rate_p() -> None:
    x = torch.randn(2000, 1, 2, 3, generator=gen(1))
    out = hflip(x, gen(2), p=0.3)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped ^ kept).all()  # random data: no sample equals its own mirror image
    assert abs(flipped.float().mean().item() - 0.3) < 0.05
    assert torch.equal(hflip(x, gen(2), p=0.0), x) and torch.equal(hflip(x, gen(2), p=1.0), x.flip(3))


# ---------------------------------------------------------------- cutout


def test_cutout_zeroes_exactly_one_clipped_square_per_image() -> None:
    x = positive_batch(n=300, h=12, w=10)
    size = 6
    out = cutout(x, size, gen(3))
    zero = out == 0
    assert (zero.all(1) == zero.any(1)).all()  # same hole in every channel
    assert torch.equal(out[~zero], x[~zero])  # nothing else changes
    full = clipped = 0
    for hole in zero[:, 0]:
        rows = hole.any(1).nonzero().flatten()
        cols = hole.any(0).nonzero().flatten()
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert hole[r0:r1, c0:c1].all() and hole.sum() == (r1 - r0) * (c1 - c0)  # one solid rectangle
        assert r1 - r0 <= size and c1 - c0 <= size
        # A side shorter than `size` only where the square was clipped at that border.
        assert r1 - r0 == size or r0 == 0 or r1 == hole.shape[0]
        assert c1 - c0 == size or c0 == 0 or c1 == hole.shape[1]
        if (r1 - r0, c1 - c0) == (size, size):
            full += 1
        else:
            clipped += 1
    assert full > 0 and clipped > 0


def test_cutout_size_zero_is_identity() -> None:
    x = positive_batch()
    assert torch.equal(cutout(x, 0, gen(0)), x)


# ---------------------------------------------------------------- normalize and Augment


def test_normalize_matches_per_channel_formula() -> None:
    x = torch.rand(4, 3, 5, 5, generator=gen(4))
    out = normalize(x, MEAN, STD)
    for c in range(3):
        assert torch.allclose(out[:, c], (x[:, c] - MEAN[c]) / STD[c])
    with pytest.raises(ValueError):
        normalize(x, MEAN[:2], STD[:2])


def test_augment_is_deterministic_per_seed() -> None:
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=gen(5))
    aug = Augment(crop_padding=4, flip=True, cutout=16, mean=MEAN, std=STD)
    a, b, c = aug(x, gen(7)), aug(x, gen(7)), aug(x, gen(8))
    assert a.dtype == torch.float32 and a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_augment_on_uint8_equals_augment_on_float_input() -> None:
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=gen(10))
    aug = Augment(mean=MEAN, std=STD)
    assert torch.equal(aug(x, gen(11)), aug(x.float() / 255, gen(11)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_with_cpu_generator_matches_cpu() -> None:
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=gen(12))
    aug = Augment(mean=MEAN, std=STD)
    on_gpu = aug(x.cuda(), gen(13)).cpu()
    assert torch.allclose(on_gpu, aug(x, gen(13)), atol=1e-6)
    assert aug(x.cuda(), torch.Generator(device="cuda").manual_seed(0)).is_cuda


def test_augment_pads_black_before_normalizing_and_cuts_out_after() -> None:
    x = torch.randint(1, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=gen(6))
    black = normalize(torch.zeros(1, 3, 1, 1), MEAN, STD).flatten()
    cropped = Augment(crop_padding=4, flip=False, cutout=0, mean=MEAN, std=STD)(x, gen(9))
    # Samples shifted down have their top row from the zero padding: black in normalized units, not 0.
    top = cropped[:, :, 0, :]
    padded_rows = (top == black[None, :, None]).all(2).all(1)
    assert padded_rows.any() and not (cropped == 0).any()
    holes = Augment(crop_padding=0, flip=False, cutout=8, mean=MEAN, std=STD)(x, gen(9))
    zero = holes == 0
    assert zero.any() and torch.equal(holes[~zero], normalize(x.float() / 255, MEAN, STD)[~zero])


def test_augment_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        Augment(mean=MEAN)
    with pytest.raises(ValueError):
        Augment(cutout=-1)


# ---------------------------------------------------------------- CIFAR loader


FAKE10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def write_fake_cifar(root: str, name: str, per_file: int = 5) -> dict[str, np.ndarray]:
    """Write a tiny CIFAR folder in the python-pickle format of the original release; return the written arrays."""
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, train, test, label_key, classes = "cifar-10-batches-py", FAKE10_TRAIN, ["test_batch"], "labels", 10
        meta_name, meta = "batches.meta", {"label_names": [f"c{i}" for i in range(10)]}
    else:
        folder, train, test, label_key, classes = "cifar-100-python", ["train"], ["test"], "fine_labels", 100
        meta_name, meta = "meta", {"fine_label_names": [f"f{i}" for i in range(100)]}
    os.makedirs(os.path.join(root, folder))
    written: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for split, files in (("train", train), ("test", test)):
        for f in files:
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            labels = rng.integers(0, classes, per_file).tolist()
            with open(os.path.join(root, folder, f), "wb") as fh:
                pickle.dump({"data": data, label_key: labels, "batch_label": f}, fh)
            written[f"{split}_x"].append(data)
            written[f"{split}_y"].extend(labels)
    with open(os.path.join(root, folder, meta_name), "wb") as fh:
        pickle.dump(meta, fh)
    return {k: np.concatenate(v) if k.endswith("_x") else np.array(v) for k, v in written.items()}


def load_cifar(root: str, name: str, download: bool = False) -> dict:
    """The reader of conf/data/<name>.yaml, called on ``root``."""
    return instantiate(group_config("data", name).reader)(root, download=download)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_load_cifar_reads_pickled_batches_as_uint8_chw(tmp_path, name: str) -> None:
    written = write_fake_cifar(str(tmp_path), name)
    data = load_cifar(str(tmp_path), name, download=False)
    n_train = 25 if name == "cifar10" else 5
    assert data["train_x"].shape == (n_train, 3, 32, 32) and data["train_x"].dtype == torch.uint8
    assert data["test_x"].shape == (5, 3, 32, 32) and data["test_y"].dtype == torch.int64
    # Row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32.
    row = written["train_x"][1]
    assert data["train_x"][1, 1, 2, 3].item() == row[1024 + 2 * 32 + 3]
    assert torch.equal(data["train_x"].flatten(1), torch.from_numpy(written["train_x"]))
    assert data["train_y"].tolist() == written["train_y"].tolist()
    assert data["test_y"].tolist() == written["test_y"].tolist()
    assert len(data["mean"]) == 3 and len(data["std"]) == 3
    assert len(data["classes"]) == (10 if name == "cifar10" else 100)
    if name == "cifar10":
        assert data["mean"] == MEAN and data["std"] == STD


def test_load_cifar_missing_files_raise_with_location_and_hint(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_cifar(str(tmp_path), "cifar10", download=False)
    msg = str(err.value)
    assert os.path.join(str(tmp_path), "cifar-10-batches-py") in msg
    assert "make data" in msg and "tar xzf cifar-10-python.tar.gz" in msg


def test_cifar_reader_rejects_a_name_without_normalization_constants() -> None:
    node = OmegaConf.to_container(group_config("data", "cifar10").reader, resolve=True)
    node.pop("_target_")
    with pytest.raises(ValueError, match="cifar10"):
        CifarPickles(**{**node, "name": "cifar1000"})
