"""Checkpoint cost against epoch time for the CPU presets, measured side by side in one process.

For each preset (experiment x arch): build the model, optimizer and data exactly as the runner does, time 20 training
steps to estimate seconds per epoch, then time ``checkpoint.save_atomic`` of the runner's payload (model, optimizer
with momentum buffers, schedule, RNG states, loop state) five times. Prints seconds per checkpoint, seconds per epoch,
their ratio, and the checkpoint size.

    python scripts/bench_checkpoint.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from emergence import checkpoint, seeding  # noqa: E402
from emergence.loop import initial_state  # noqa: E402

PRESETS = [("mlp_fashion_mnist", "mlp"), ("cnn_fashion_mnist", "resnet20"), ("cnn_fashion_mnist", "vgg19")]


def main() -> int:
    torch.set_num_threads(1)
    print(f"{'preset':34s} {'params':>9s} {'ckpt MB':>8s} {'s/ckpt':>7s} {'s/epoch':>8s} {'ratio':>7s}")
    for experiment, arch in PRESETS:
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}", f"arch={arch}", "init=kaiming"])
        task = instantiate(cfg.data).setup(torch.device("cpu"))
        model = instantiate(cfg.arch, **task.model_kwargs())
        optimizer = instantiate(cfg.optim)(model, example=task.example_inputs())
        schedule = instantiate(cfg.schedule)(optimizer, task.steps_per_epoch(cfg.trainer.batch_size), 1)
        batches = task.train_batches(cfg.trainer.batch_size, seeding.generator(0, "data"))
        t0, n = time.perf_counter(), 20
        for _ in range(n):
            loss, _ = task.loss(model, next(batches))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        epoch_s = (time.perf_counter() - t0) / n * task.steps_per_epoch(cfg.trainer.batch_size)
        payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                   "rng": {"torch": torch.get_rng_state()}, "loop": initial_state()}  # fmt: skip
        times = []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "checkpoint.pt"
            for _ in range(5):
                t0 = time.perf_counter()
                checkpoint.save_atomic(payload, path)
                times.append(time.perf_counter() - t0)
            size = path.stat().st_size / 2**20
        ckpt_s = statistics.median(times)
        n_params = sum(p.numel() for p in model.parameters())
        name = f"{experiment}/{arch}"
        print(f"{name:34s} {n_params:9d} {size:8.2f} {ckpt_s:7.3f} {epoch_s:8.1f} {ckpt_s / epoch_s:7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
