"""The command line around ``train.run``: exit codes, one-line configuration errors, and failed jobs of a sweep.

Exit codes: 2 for a configuration error or a run dir that is refused or in use, 1 for missing data, a corrupt
checkpoint or a failed write, 128 + signal after a preemption checkpoint. In a multirun a failed job is recorded and
the sweep goes on (``runinfo.SweepReport``).
"""

from __future__ import annotations

import logging
import os
import sys

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

from emergence import checkpoint, runinfo
from emergence.config import ConfigError

log = logging.getLogger("emergence")
EXIT_CODES = ((ConfigError, 2), (checkpoint.RunDirBusy, 2), (checkpoint.CheckpointError, 1), (OSError, 1))


def run_job(run, cfg) -> float | None:
    """``run(cfg)`` as one job of the command line; returns the best value of the target metric (for sweepers such as
    optuna), or None for a job that failed inside a sweep."""
    try:
        record = run(cfg)
    except checkpoint.Preempted as exc:
        log.warning("%s; rerun the same command to resume", exc)
        sys.exit(128 + exc.signum)
    except Exception as exc:
        code = next((c for kind, c in EXIT_CODES if isinstance(exc, kind)), None)
        in_sweep = runinfo.sweep_folder() is not None
        if code is None and not in_sweep:
            raise  # a bug: the full traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("%s%s", "config error: " if code == 2 else "", message, exc_info=code is None)
        if not in_sweep:
            sys.exit(code)
        runinfo.record_sweep_failure(cfg.run_dir, message, code or 1)  # a bad job fails alone; the sweep goes on
        return None
    summary = record.get("summary", {})
    return summary.get(runinfo.summary_key(summary.get("target_metric", "val/acc"), "best"))


HYDRA_CONFIG_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException)


def main(hydra_main) -> None:
    """Call the ``@hydra.main`` function; Hydra's own config errors (a key that does not exist, an unknown option)
    exit 2 in one line."""
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them and exiting 1
    try:
        hydra_main()
    except HYDRA_CONFIG_ERRORS as exc:
        parts = [str(exc), str(exc.__cause__ or "")]
        text = " ".join(line.strip() for part in parts for line in part.splitlines() if line.strip())
        print(f"config error: {text}", file=sys.stderr)
        sys.exit(2)
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
