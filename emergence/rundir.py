"""What a rerun does with its run dir, and the checkpoint assembled from the run's parts (next to checkpoint.py,
which holds the file-level pieces: atomic writes, loading, the lock, preemption, restoring the metrics records).

``Attempt(run_dir, cfg, info)`` reads ``run.json`` and ``checkpoint.pt`` once and decides before anything is changed:
refuse a run dir of another configuration (``ForeignRun``) or with an unusable checkpoint (``CheckpointError``), skip
a finished run (``finished``), resume an interrupted one (``resume``: its checkpoint) or start afresh. A failure while
reading the data marks an unfinished run failed (``reading_data``); ``check_data`` refuses a run made on other data;
``begin()`` then makes the files match the decision: a fresh start keeps an earlier attempt's records as
``metrics.jsonl.attempt<n>`` and drops its checkpoint (only reachable with ``force=true``), a resume restores
``metrics.jsonl`` to the records its checkpoint holds.

``restore(resume, ...)`` loads a checkpoint into the freshly built model, optimizer, schedule and layer tracker, sets
the RNG states and returns its ``LoopState``; ``Checkpointer`` writes one (the loop state, those parts, the metrics
records so far, the RNG states and the run's identity: fingerprint, data identity, init stats and seconds, W&B id).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

from emergence import checkpoint
from emergence.components import as_config_error, get_rng, keep_as_attempt, record_failure, set_rng
from emergence.config import legacy_fingerprints
from emergence.loop import LoopState

log = logging.getLogger("emergence")


class Attempt:
    """This attempt at a run dir: what its run.json and checkpoint say a rerun does (see the module docstring)."""

    def __init__(self, run_dir: Path, cfg, info: dict):
        self.run_dir, self.info = Path(run_dir), info
        legacy = legacy_fingerprints(cfg)  # this configuration as older code wrote it (renamed keys, neutral keys)
        self.previous, self.resume = checkpoint.decide(run_dir, info["fingerprint"], cfg.force, tuple(legacy))
        for record in (self.previous, self.resume):
            if (record or {}).get("fingerprint") in legacy:
                log.info("%s: recognised a run written %s", run_dir, legacy[record["fingerprint"]])
                break

    @property
    def finished(self) -> bool:
        return self.previous is not None and self.previous.get("status") in checkpoint.FINISHED

    @contextmanager
    def reading_data(self):
        """A failure inside marks the run failed in run.json (a run dir never stays without one; a finished run's
        record is left alone) and is raised as a configuration error where it is one."""
        try:
            yield
        except Exception as exc:
            if not self.finished:
                record_failure(self.run_dir, self.info, exc)
            raise as_config_error(exc) from exc

    def check_data(self, data_id: str) -> None:
        """Record the data identity; refuse (ForeignRun) a run or checkpoint made on other data."""
        self.info["data_identity"] = data_id
        checkpoint.check_data(self.run_dir, data_id, self.previous, self.resume)

    def begin(self) -> None:
        """Make the run dir's files match the decision (see the module docstring)."""
        if self.resume is None:
            keep_as_attempt(self.run_dir / "metrics.jsonl")  # an earlier unfinished attempt is kept, never overwritten
            (self.run_dir / "checkpoint.pt").unlink(missing_ok=True)
        else:
            loop = self.resume["loop"]
            log.info("resuming %s at step %d (epoch %d)", self.run_dir, loop["step"], loop["epoch"])
            checkpoint.restore_metrics(self.run_dir / "metrics.jsonl", self.resume)


def restore(resume: dict, *, model, optimizer, schedule, layer_tracker) -> LoopState:
    """Load a checkpoint into the freshly built parts, set the RNG states; returns the loop state to continue from."""
    state = LoopState()
    try:
        state.load_state_dict(resume["loop"])
    except ValueError as exc:
        raise checkpoint.CheckpointError(
            f"the checkpoint holds {exc}; nothing was changed. Move checkpoint.pt away to restart this run, or rerun "
            "with force=true."
        ) from None
    checkpoint.restore(resume, model=model, optimizer=optimizer, schedule=schedule, layer_tracker=layer_tracker)
    set_rng(resume["rng"])
    return state


class Checkpointer:
    """``checkpointer(state)`` writes the run's checkpoint (atomically) from its parts, as the loop asks."""

    def __init__(self, path: Path, info: dict, *, model, optimizer, schedule, logger, layer_tracker, init_stats,
                 init_s):  # fmt: skip
        self.path, self.info, self.init_stats, self.init_s = Path(path), info, init_stats, init_s
        self.parts = {"model": model, "optimizer": optimizer, "schedule": schedule, "logger": logger,
                      "layer_tracker": layer_tracker}  # fmt: skip

    def __call__(self, state: LoopState) -> None:
        t0 = time.perf_counter()
        info = self.info
        checkpoint.save(self.path, state.state_dict(), **self.parts, fingerprint=info["fingerprint"],
                        data_identity=info["data_identity"], rng=get_rng(), init_stats=self.init_stats,
                        init_s=self.init_s, wandb_id=info.get("wandb_id"))  # fmt: skip
        log.debug("checkpoint at step %d in %.3f s", state.step, time.perf_counter() - t0)
