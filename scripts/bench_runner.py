"""Runner overhead and diagnostics cost, measured side by side in one process (interleaved repeats, medians).

1. Steps/s of the runner's training loop (``emergence.loop.train`` via ``run``) against a bare 20-line PyTorch loop
   on the same MLP (784-256x6-10), batch 128 and in-memory Fashion-MNIST tensors: the ratio is the runner overhead.
2. The cost of the per-layer diagnostics (``diagnostics.every_steps``) and of the emergence measure, as the relative
   change of total run time (evaluation excluded by disabling it where possible).

    python scripts/bench_runner.py [--steps 300] [--repeats 3] [--data fashion_mnist]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from emergence.models.mlp import MLP  # noqa: E402
from emergence.tasks.classification import ClassificationTask  # noqa: E402
from emergence.train import run  # noqa: E402


def bare_loop(task, steps, batch_size):
    """The reference: a plain loop over shuffled in-memory tensors."""
    torch.manual_seed(0)
    model = MLP(task.input_shape, task.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = task.splits["train"]
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for i in range(steps):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def diagnostics_call(task, repeats=50):
    """Seconds per LayerTracker.stats call on the MLP (after one backward, so gradients exist)."""
    from emergence.metrics.layer_stats import LayerTracker

    torch.manual_seed(0)
    model = MLP(task.input_shape, task.num_classes)
    x, y = task.splits["train"]
    F.cross_entropy(model(x[:128]), y[:128]).backward()
    weights = [(n, m.weight) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    tracker = LayerTracker(weights)
    t0 = time.perf_counter()
    for i in range(repeats):
        tracker.stats(i)
    return (time.perf_counter() - t0) / repeats


def runner(data, steps, overrides, tmp):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "arch=mlp",
                "init=kaiming",
                f"data={data}",
                "logger=none",
                "trainer.epochs=1",
                f"trainer.max_steps={steps}",
                "trainer.progress=false",
                f"paths.root={tmp}",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.run_dir = tempfile.mkdtemp(dir=tmp)
    t0 = time.perf_counter()
    record = run(cfg)
    total = time.perf_counter() - t0
    return record["wall_s"] / record["steps"], total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default="fashion_mnist")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = ClassificationTask(args.data, root=str(ROOT / "data")).setup(torch.device("cpu"))
    variants = {
        "runner (measure off, diagnostics off)": ["measure.enabled=false", "diagnostics.every_steps=0"],
        "runner + diagnostics every 50 steps": ["measure.enabled=false", "diagnostics.every_steps=50"],
        "runner + diagnostics every 10 steps": ["measure.enabled=false", "diagnostics.every_steps=10"],
        "runner + emergence measure (2 evals)": ["measure.enabled=true", "diagnostics.every_steps=0"],
    }
    step_s = {"bare loop": []}
    total_s = {k: [] for k in variants}
    step_s.update({k: [] for k in variants})
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            step_s["bare loop"].append(bare_loop(task, args.steps, 128))
            for name, overrides in variants.items():
                per_step, total = runner(args.data, args.steps, overrides, tmp)
                step_s[name].append(per_step)
                total_s[name].append(total)
    bare = statistics.median(step_s["bare loop"])
    base_total = statistics.median(total_s["runner (measure off, diagnostics off)"])
    print(f"MLP 784-256x6-10, batch 128, {args.steps} steps, {args.repeats} interleaved repeats, 1 thread")
    print(f"{'variant':42s} {'ms/step':>8s} {'steps/s':>8s} {'vs bare':>8s} {'run s':>7s} {'vs runner':>9s}")
    print(f"{'bare loop':42s} {1000 * bare:8.2f} {1 / bare:8.1f} {1.0:8.3f} {'':>7s} {'':>9s}")
    for name in variants:
        s = statistics.median(step_s[name])
        t = statistics.median(total_s[name])
        print(f"{name:42s} {1000 * s:8.2f} {1 / s:8.1f} {bare / s:8.3f} {t:7.2f} {t / base_total:9.3f}")
    call = diagnostics_call(task)
    print(
        f"one diagnostics call: {1000 * call:.2f} ms = {call / bare:.2f} steps; added to step time: "
        + ", ".join(f"every {k}: {100 * call / (k * bare):.2f} %" for k in (1, 10, 50, 100))
    )
    print(
        "'vs bare' = runner steps/s / bare steps/s; 'run s' = whole run() incl. setup and evaluation;"
        " 'vs runner' = run time relative to the plain runner."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
