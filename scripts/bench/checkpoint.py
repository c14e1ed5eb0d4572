"""Checkpoint cost against epoch time for the CPU presets, measured side by side in one process.

For each preset (experiment x arch): build the model, optimizer, schedule and data as the runner does, time training
steps to estimate seconds per epoch, then time ``checkpoint.save_atomic`` of the runner's payload (model, optimizer
with momentum buffers, schedule, RNG states, loop state), interleaved with the steps. Prints seconds per checkpoint,
seconds per epoch, their ratio and the checkpoint size.

    python -m scripts.bench.checkpoint [--repeats 5] [--steps 10]
    python -m scripts.bench.checkpoint --smoke          # synthetic data, one small model
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from emergence import checkpoint, seeding
from emergence.components import build_initialized_model
from emergence.loop import LoopState
from scripts.bench.timing import ROOT, Report, clock, common_args, interleave, setup

PRESETS = [("mlp_fashion_mnist", "mlp"), ("cnn_fashion_mnist", "resnet20"), ("cnn_fashion_mnist", "vgg19")]


def measure_preset(experiment: str, arch: str, extra: list[str], args) -> list:
    """One table row: params, checkpoint MB, s/checkpoint, s/epoch, their ratio."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", f"arch={arch}", "init=kaiming", *extra])
    task = instantiate(cfg.data).setup(torch.device("cpu"))
    model = build_initialized_model(cfg, 0, task).model
    optimizer = instantiate(cfg.optim)(model, example=task.example_inputs())
    steps_per_epoch = task.steps_per_epoch(cfg.trainer.batch_size)
    schedule = instantiate(cfg.schedule)(optimizer, steps_per_epoch, 1)
    generator = seeding.generator(0, "data")

    def batches():
        while True:
            yield from task.train_batches(cfg.trainer.batch_size, generator)

    stream = batches()

    def steps() -> None:
        for _ in range(args.steps):
            loss, _ = task.loss(model, next(stream))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"

        def save() -> float:
            payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "schedule": schedule.state_dict(), "rng": {"torch": torch.get_rng_state()},
                       "loop": LoopState().state_dict()}  # fmt: skip
            return clock(lambda: checkpoint.save_atomic(payload, path))

        steps()  # warm-up, and momentum buffers exist before the first checkpoint
        stats = interleave({"epoch": lambda: clock(steps) / args.steps * steps_per_epoch, "ckpt": save}, args.repeats)
        size = path.stat().st_size / 2**20
    n_params = sum(p.numel() for p in model.parameters())
    epoch_s, ckpt_s = stats["epoch"].median, stats["ckpt"].median
    ratio = f"{ckpt_s / epoch_s:.4f}"
    return [f"{experiment}/{arch}", n_params, f"{size:.2f}", f"{ckpt_s:.3f}", f"{epoch_s:.1f}", ratio]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="training steps per repeat (for seconds per epoch)")
    common_args(ap, repeats=5)
    args = ap.parse_args(argv)
    presets, extra = PRESETS, []
    if args.smoke:
        presets, extra, args.steps = [("mlp_fashion_mnist", "mlp")], ["data=synthetic"], 2
    setup(args)
    report = Report(
        "Checkpoint cost",
        ["preset", "params", "ckpt MB", "s/ckpt", "s/epoch", "ckpt / epoch"],
        setting=f"{args.steps} training steps and one checkpoint per repeat, {args.repeats} interleaved repeats",
    )
    for experiment, arch in presets:
        report.add(*measure_preset(experiment, arch, extra, args))
    report.note("s/epoch = median seconds per training step x steps per epoch (evaluation excluded).")
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
