"""Time the emergence measure (emergence/metrics/emergence.py) on an MLP 784-(1024x8)-10 with a 256-sample probe.

Prints the median wall time of 5 `measure` calls (target < 1 s on CPU, one thread) and the measured E.

Usage: python scripts/bench_measure.py
"""

import statistics
import time

import torch
from torch import nn

from emergence.metrics.emergence import measure


def tiny_mlp(width: int = 1024, depth: int = 8, d_in: int = 784, n_classes: int = 10) -> nn.Sequential:
    """Flatten, then `depth` Linear+ReLU blocks of `width`, then a Linear readout."""
    mods: list[nn.Module] = [nn.Flatten()]
    fan_in = d_in
    for _ in range(depth):
        mods += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    mods.append(nn.Linear(fan_in, n_classes))
    return nn.Sequential(*mods)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = tiny_mlp()
    probe = torch.randn(256, 1, 28, 28)
    measure(model, (probe,))  # warm-up: allocator and kernel selection
    times, result = [], {}
    for _ in range(5):
        t0 = time.perf_counter()
        result = measure(model, (probe,))
        times.append(time.perf_counter() - t0)
    print(f"measure median of 5: {statistics.median(times):.4f} s (E = {float(result['E']):.4g}, a = {result['a']})")


if __name__ == "__main__":
    main()
