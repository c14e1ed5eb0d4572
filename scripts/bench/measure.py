"""Emergence init and the emergence measure: seconds per call on an MLP 784-(1024x8)-10, one thread.

- init: ``Emergence(Kaiming(), alpha=1.2)`` on a freshly built model (base init included; the model build is not),
  beside the Kaiming base alone, so that the difference is what the ramp adds;
- measure: ``emergence.metrics.emergence.measure`` on a 256-sample probe (target < 1 s on one CPU thread).
Interleaved repeats, medians, in wall time and in this process's CPU time (the figure on a shared machine). The
measured E is printed so that a change of the result is seen next to the time.

    python -m scripts.bench.measure [--width 1024] [--depth 8] [--repeats 7]
    python -m scripts.bench.measure --smoke
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from torch import nn

from emergence.init.emergence import Emergence
from emergence.init.kaiming import Kaiming
from emergence.metrics.emergence import measure
from scripts.bench.timing import Report, clocks, common_args, interleave, setup


def mlp(width: int, depth: int, d_in: int = 784, n_classes: int = 10) -> nn.Sequential:
    """Flatten, then ``depth`` Linear+ReLU blocks of ``width``, then a Linear readout."""
    mods: list[nn.Module] = [nn.Flatten()]
    fan_in = d_in
    for _ in range(depth):
        mods += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    mods.append(nn.Linear(fan_in, n_classes))
    return nn.Sequential(*mods)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--probe", type=int, default=256)
    common_args(ap, repeats=7)
    args = ap.parse_args(argv)
    if args.smoke:
        args.width, args.depth, args.probe = 64, 3, 32
    setup(args)
    torch.manual_seed(0)
    model = mlp(args.width, args.depth)
    probe = torch.randn(args.probe, 1, 28, 28)
    example = (probe[:8],)
    result = measure(model, (probe,))  # warm-up: allocator and kernel selection

    cpu: dict[str, list[float]] = {}

    def timed(name: str, make_call):
        """A repeat of ``name``: ``make_call()`` prepares outside the timing and returns the call to time."""

        def once() -> float:
            wall, used = clocks(make_call())
            cpu.setdefault(name, []).append(used)
            return wall

        return once

    def init_call(make_init):
        fresh = mlp(args.width, args.depth)  # the model build is not timed
        return lambda: make_init()(fresh, example, torch.Generator().manual_seed(0))

    fns = {
        "emergence init": timed("emergence init", lambda: init_call(lambda: Emergence(Kaiming(), alpha=1.2))),
        "kaiming init (the base alone)": timed("kaiming init (the base alone)", lambda: init_call(Kaiming)),
        "emergence measure": timed("emergence measure", lambda: lambda: measure(model, (probe,))),
    }
    stats = interleave(fns, args.repeats)
    report = Report(
        "Emergence init and measure",
        ["call", "s/call (median)", "min", "max", "CPU s/call (median)"],
        setting=f"MLP 784-({args.width}x{args.depth})-10, probe {args.probe}, {args.repeats} interleaved repeats",
    )
    for name, s in stats.items():
        report.add(name, f"{s.median:.4f}", f"{min(s.values):.4f}", f"{max(s.values):.4f}",
                   f"{statistics.median(cpu[name]):.4f}")  # fmt: skip
    report.note(f"E = {float(result['E']):.4g}, active units per layer a = {result['a']}")
    report.extra["seconds"] = {k: s.as_dict() for k, s in stats.items()}
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
