"""Separate random streams for model build, init, data order, GradInit batches, training noise and probes.

One integer ``seed`` per run is expanded into independent, named streams with numpy's SeedSequence, so that changing
the initializer (which draws from the ``init`` stream) never changes the data order a seed sees (``data`` stream), and
changing the data never changes the weights.
"""

from __future__ import annotations

import numpy as np
import torch

STREAMS = {"model": 0, "init": 1, "data": 2, "gradinit": 3, "train": 4, "probe": 5, "split": 6}


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` derived from the run seed."""
    if stream not in STREAMS:
        raise KeyError(f"unknown random stream {stream!r}; known: {sorted(STREAMS)}")
    state = np.random.SeedSequence([int(seed), STREAMS[stream]]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded for ``stream``."""
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g


def make_deterministic() -> None:
    """Ask torch for deterministic kernels (exact on CPU; best effort on CUDA)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
