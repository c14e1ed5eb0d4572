"""Runner overhead: the runner's training steps/s against a bare PyTorch loop, side by side in one process.

Both loops draw the same batches from the same ``ClassificationTask.train_batches`` (uint8 images normalized to float
on the fly, one seeded generator per batch) and use the same model, optimizer (``cfg.optim``: SGD momentum) and
schedule; the bare loop is forward, cross-entropy, zero_grad, backward, step, schedule step, nothing else. A step's
time is measured the same way for both, from outside: the batch generator is wrapped to stamp each batch as it is
handed out, and steps/s = (batches - 1) / (last stamp - first stamp). So every per-step cost counts (data, loss,
bookkeeping, divergence checks, logging) and setup, the step-0 evaluation and the final evaluation do not.

Variants, interleaved per repeat (order rotated), medians over repeats:
- ``runner``: measure and per-layer diagnostics off — the ratio runner / bare is the loop's own overhead;
- ``runner + diagnostics``: ``diagnostics.every_steps`` at its default (50), counted separately;
- ``runner, no gradient-norm check``: ``trainer.diverge_grad_norm=null`` (divergence from the loss only), which shows
  what the per-step gradient norm of the divergence check costs;
- evaluation (the validation split, ``data.eval_batch_size``) and the emergence measure at their defaults are timed
  per call and expressed as a share of one epoch of training.

    python -m scripts.bench.runner                      # MLP and ResNet-20, Fashion-MNIST, batch 128, 1 thread
    python -m scripts.bench.runner --archs mlp --steps 400 --repeats 9
    python -m scripts.bench.runner --smoke              # synthetic data, a few steps (the test suite)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from emergence import seeding
from emergence.components import build_initialized_model, emergence_probe
from emergence.tasks.classification import ClassificationTask
from emergence.train import run
from scripts.bench.timing import ROOT, Report, common_args, interleave, paired, setup

STAMPS: list[tuple[float, float]] = []  # (wall clock, this process's CPU time) when each batch is handed out
_train_batches = ClassificationTask.train_batches


def _stamped(self, *args, **kwargs):
    """``train_batches`` that records the time each batch is handed to the loop (the runner's and the bare one's)."""
    for batch in _train_batches(self, *args, **kwargs):
        STAMPS.append((time.perf_counter(), time.process_time()))
        yield batch


ClassificationTask.train_batches = _stamped  # this benchmark process only
# every run() reads the dataset again; read it once here, so that a repeat is mostly training steps
_RAW: dict = {}


def _cached(name: str, read):
    def cached_read(root, **kw):
        key = (name, repr(read), str(root), repr(kw))
        if key not in _RAW:
            _RAW[key] = read(root, **kw)
        return _RAW[key]

    return cached_read


_task_init = ClassificationTask.__init__


def _init_cached(self, *args, **kwargs):
    _task_init(self, *args, **kwargs)
    self.read = _cached(self.dataset, self.read)  # the reader of its conf/data file, read once per process


ClassificationTask.__init__ = _init_cached


def step_seconds() -> tuple[float, float, float]:
    """(mean, median, CPU) seconds per step of the last run: the mean counts every step (periodic diagnostics
    included); the median is the typical step, robust to short bursts of other processes; CPU is this process's CPU
    time per step (mean), which other processes on a shared machine barely change."""
    if len(STAMPS) < 2:
        raise RuntimeError("fewer than 2 batches were drawn; raise --steps")
    gaps = [b[0] - a[0] for a, b in zip(STAMPS, STAMPS[1:])]
    cpu = (STAMPS[-1][1] - STAMPS[0][1]) / len(gaps)
    return (STAMPS[-1][0] - STAMPS[0][0]) / len(gaps), statistics.median(gaps), cpu


def config(arch: str, data: str, steps: int, root: str, *overrides: str):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"arch={arch}", "init=kaiming", f"data={data}", "logger=none", "trainer.epochs=1", "trainer.batch_size=128",
            f"trainer.max_steps={steps}", "trainer.progress=false", "trainer.device=cpu", "trainer.cpu_threads=null",
            "trainer.checkpoint_minutes=null", f"paths.root={root}", *overrides,
        ])  # fmt: skip
    with open_dict(cfg):
        cfg.run_dir = tempfile.mkdtemp(dir=root)
    return cfg


def bare_loop(cfg, task) -> tuple[float, float, float]:
    """Seconds per step of a plain loop over the task's batches (same model, optimizer, schedule as the runner)."""
    model = build_initialized_model(cfg, int(cfg.seed), task).model  # the runner's weights, so the same work per step
    optimizer = instantiate(cfg.optim)(model, example=task.example_inputs())
    schedule = instantiate(cfg.schedule)(optimizer, task.steps_per_epoch(128), 1)
    model.train()
    STAMPS.clear()
    for step, (x, y) in enumerate(task.train_batches(128, seeding.generator(0, "data"))):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step + 1 >= cfg.trainer.max_steps:
            break
    return step_seconds()


def runner(cfg) -> tuple[float, float, float]:
    with open_dict(cfg):
        cfg.run_dir = tempfile.mkdtemp(dir=cfg.paths.root)  # a fresh run dir: a finished one would be skipped
    STAMPS.clear()
    record = run(cfg)
    assert record["status"] == "completed" and record["steps"] == cfg.trainer.max_steps, record.get("status")
    return step_seconds()


def eval_costs(cfg, task) -> tuple[float, float]:
    """Seconds per validation evaluation and per emergence measurement, at the config's defaults."""
    model = build_initialized_model(cfg, int(cfg.seed), task).model
    n_params = sum(p.numel() for p in model.parameters())
    measure = emergence_probe(cfg.measure, task, 0, n_params)
    task.evaluate(model, "val")  # warm-up
    t0 = time.perf_counter()
    task.evaluate(model, "val")
    t1 = time.perf_counter()
    measure(model)
    return t1 - t0, time.perf_counter() - t1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["mlp", "resnet20"])
    ap.add_argument("--data", default="fashion_mnist")
    ap.add_argument("--steps", type=int, default=0, help="steps per run (0: 300 for the MLP, 20 for conv nets)")
    common_args(ap, repeats=7)
    args = ap.parse_args(argv)
    if args.smoke:
        args.data, args.steps = "synthetic", 4
    setup(args)
    report = Report(
        "Runner vs bare loop (training steps/s)",
        ["model", "variant", "typical ms", "mean ms", "CPU ms", "vs bare (typical)", "vs bare (mean)", "vs bare (CPU)",
         "spread %"],
        setting=f"data {args.data}, batch 128, SGD momentum, {args.repeats} interleaved repeats, medians",
    )
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            steps = args.steps or (300 if arch.startswith("mlp") else 20)
            cfgs = {
                "bare loop": config(arch, args.data, steps, tmp),
                "runner": config(arch, args.data, steps, tmp, "measure.enabled=false", "diagnostics.every_steps=0"),
                "runner + diagnostics (default)": config(arch, args.data, steps, tmp, "measure.enabled=false"),
                "runner, no gradient-norm check": config(arch, args.data, steps, tmp, "measure.enabled=false",
                                                         "diagnostics.every_steps=0", "trainer.diverge_grad_norm=null"),
            }
            task = instantiate(cfgs["bare loop"].data).setup(torch.device("cpu"))
            stats = interleave(
                {
                    "bare loop": lambda c=cfgs["bare loop"], t=task: bare_loop(c, t),
                    "runner": lambda c=cfgs["runner"]: runner(c),
                    "runner + diagnostics (default)": lambda c=cfgs["runner + diagnostics (default)"]: runner(c),
                    "runner, no gradient-norm check": lambda c=cfgs["runner, no gradient-norm check"]: runner(c),
                },
                args.repeats,
                warmup=0 if args.smoke else 1,
            )
            bare = stats["bare loop"]
            for name, figures in stats.items():
                r = [paired(b, v) for b, v in zip(bare, figures)]  # mean, typical, cpu
                ratios[f"{arch}/{name}"] = {"mean": r[0].median, "typical": r[1].median, "cpu": r[2].median}
                report.add(
                    arch, name, *(f"{1e3 * figures[i].median:.2f}" for i in (1, 0, 2)),
                    *(f"{r[i].median:.3f}" for i in (1, 0, 2)),
                    " / ".join(f"{100 * r[i].spread:.0f}" for i in (1, 0, 2)),
                )  # fmt: skip
            ev, me = eval_costs(cfgs["bare loop"], task)
            epoch = bare[0].median * task.steps_per_epoch(128)
            report.note(
                f"{arch}: one evaluation of the validation split ({len(task.splits['val'][1])} images) takes "
                f"{ev:.3f} s = {100 * ev / epoch:.1f} % of an epoch of training ({epoch:.1f} s); the emergence "
                f"measure at its defaults adds {me:.3f} s per evaluation ({100 * me / epoch:.1f} %)."
            )
    report.note(
        "Per step: typical = median wall time of a run's steps (robust to short bursts of other processes); mean = "
        "(last - first batch) / steps, wall (periodic costs such as diagnostics included); CPU = this process's CPU "
        "time per step (barely changed by other processes on a shared machine). Times: medians over repeats. "
        "vs bare = median over repeats of (bare-loop time / variant time) within the repeat (target >= 0.97 for "
        "`runner`); spread = (max - min) / median of those per-repeat ratios, typical / mean / CPU."
    )
    report.extra["ratios"] = ratios
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
