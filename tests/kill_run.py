"""Run ``emergence.train`` and SIGKILL itself at a chosen moment (driver for tests/test_resume.py).

    python -m tests.kill_run EVENT:N [hydra overrides ...]

EVENT:N picks the moment, counted from 1 within this process:
``step:N`` before the N-th training step's loss, ``ckpt_tmp:N`` while the N-th checkpoint's temporary file is written
(``checkpoint.pt.tmp`` is complete on disk, not yet renamed), ``ckpt:N`` right after the N-th checkpoint was renamed
into place, ``runjson:N`` before the N-th ``run.json`` write (N=1: during start-up, before the run is recorded),
``setup:1`` while the data is being loaded. ``none:0`` never kills. The kill is a real SIGKILL: no handler, no flush.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys


def main() -> None:
    spec, *overrides = sys.argv[1:]
    event, n = spec.split(":")
    n = int(n)
    counts: dict[str, int] = {}

    def hit(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1
        if name == event and counts[name] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    from emergence import checkpoint, runinfo
    from emergence.tasks.classification import ClassificationTask

    loss, setup, write_json = ClassificationTask.loss, ClassificationTask.setup, runinfo.write_json
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        is_ckpt = str(src).endswith("checkpoint.pt.tmp")
        if is_ckpt:
            hit("ckpt_tmp")
        real_replace(src, dst, *args, **kwargs)
        if is_ckpt:
            hit("ckpt")

    def patched_loss(self, model, batch):
        hit("step")
        return loss(self, model, batch)

    def patched_setup(self, device):
        hit("setup")
        return setup(self, device)

    def patched_write_json(path, obj):
        if str(path).endswith("run.json"):
            hit("runjson")
        return write_json(path, obj)

    checkpoint.os.replace = replace  # the os module is shared: only checkpoint temp files are counted
    ClassificationTask.loss, ClassificationTask.setup = patched_loss, patched_setup
    runinfo.write_json = patched_write_json  # before the runner imports it
    sys.argv = [sys.argv[0], *overrides]
    runpy.run_module("emergence.train", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
