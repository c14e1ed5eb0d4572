"""Separate random streams for model build, init, data order, training noise, probes and the init's data.

One integer ``seed`` per run is expanded into independent, named streams with numpy's SeedSequence, so that changing
the initializer (which draws from the ``init`` stream) never changes the data order a seed sees (``data`` stream), and
changing the data never changes the weights. ``init_data`` feeds the batches a data-dependent initializer sees
(``task.init_batches``), so such an initializer never shifts the training data order either. The numbers are part of
every stream's identity: never renumber an existing stream (that would change every seed's results).
"""

from __future__ import annotations

import numpy as np
import torch

# 3 and 6 were "gradinit" and "split", which nothing drew from; they stay unused so no other stream ever changes.
STREAMS = {"model": 0, "init": 1, "data": 2, "train": 4, "probe": 5, "init_data": 7}


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
