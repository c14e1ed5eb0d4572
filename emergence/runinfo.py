"""What a run records about itself: labels, environment (git commit, package versions, device), summary metrics;
and what a sweep records about its failed jobs.

``run.json`` is written atomically (temporary file, flush, fsync, rename), so a reader never sees half a file.

``SweepReport`` (a Hydra callback, conf/hydra/default.yaml) gives each multirun a folder
``<sweep dir>/.sweeps/<start time>-<pid>/``, passed to its jobs in the environment (also to submitit and joblib
workers). A job that fails there writes one JSON file (run dir, exit code, message) instead of ending the sweep; at the
end the sweep lists them and exits with their number.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from emergence.config import naming_overrides

log = logging.getLogger("emergence")
SWEEP_ENV = "EMERGENCE_SWEEP_DIR"

PACKAGES = ("torch", "torchvision", "numpy", "hydra-core", "omegaconf", "wandb", "sacrebleu", "sentencepiece")
# the run-dir name's overrides (config.naming_overrides) less these grouping keys make a run's variant label
GROUPING = ("arch", "init", "data", "debug")


def write_json(path: Path, obj: dict) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, default=_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (full disk) leaves the old file and no temporary one
        raise


def _default(v):
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def read_run_json(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is corrupt ({exc}); move it away or rerun with force=true") from exc


def git_info() -> dict:
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def environment_info(device) -> dict:
    import torch  # here, so that reading run records (scripts/aggregate.py) does not import torch

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    dev = {"type": device.type, "threads": torch.get_num_threads(), "host": platform.node()}
    if device.type == "cuda":
        dev["name"] = torch.cuda.get_device_name(device)
    return {"git": git_info(), "versions": versions, "device": dev}


def labels_from_hydra(cfg: DictConfig) -> dict:
    """Experiment, arch, init, data names, the variant (other overrides that matter), seed, W&B name and tags."""
    choices, overrides = {}, []
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        choices = dict(hc.runtime.choices)
        overrides = list(hc.overrides.task)
    except (ValueError, ImportError):  # not under @hydra.main (tests call run() on a composed config)
        pass
    variant = [o for o in naming_overrides(overrides) if o.split("=")[0].lstrip("+~") not in GROUPING]
    arch = choices.get("arch") or cfg.arch._target_.rsplit(".", 1)[-1].lower()
    init = choices.get("init") or cfg.init._target_.rsplit(".", 1)[-1].lower()
    data = choices.get("data") or str(OmegaConf.select(cfg, "data.dataset", default="data"))
    experiment = str(cfg.get("name") or "default")
    return {
        "experiment": experiment,
        "arch": arch,
        "init": init,
        "data": data,
        "seed": int(cfg.seed),
        "variant": ",".join(sorted(variant)),
        "name": f"{arch}-{init}-s{cfg.seed}",
        "tags": [
            f"arch:{arch}",
            f"init:{init}",
            f"data:{data}",
            f"norm:{OmegaConf.select(cfg, 'arch.norm', default='none')}",
        ],
    }


def summary_key(metric: str, which: str) -> str:
    """The run.json summary key of ``metric`` (e.g. ``val/acc``) at ``which`` (init, epoch1, final, best): the one
    place that names them (the runner, its sweeper return value, scripts/aggregate.py and the report use it)."""
    return f"{metric.replace('/', '_')}_{which}"


def final_test_metrics(summary: dict) -> list[str]:
    """The names ``t`` of the test metrics whose final value (a number) ``summary`` holds under
    ``summary_key(f"test/{t}", "final")``: the inverse of the rule above, for readers of run records."""
    found = ((k[len("test_") : -len("_final")], k) for k, v in summary.items() if isinstance(v, (int, float)))
    return sorted(t for t, k in found if t and summary_key(f"test/{t}", "final") == k)


def _first(history, metric, epoch):
    for r in history:
        if r.get(metric) is not None and abs(r["epoch"] - epoch) < 1e-9:
            return r[metric]
    return None


def summarize(result, steps_per_epoch, final, tracker, init_s, n_params, init_stats) -> dict:
    """Status, counters and the headline numbers (init, epoch 1, final, best, time to target) of the loop's final
    state ``result`` (a ``loop.LoopState``) and the test metrics ``final``, for the tracker's target metric."""
    metric, history = tracker.metric, result.history
    values = [r[metric] for r in history if r.get(metric) is not None and math.isfinite(r[metric])]
    summary = {
        summary_key(metric, "init"): _first(history, metric, 0),
        summary_key(metric, "epoch1"): _first(history, metric, 1),
        summary_key(metric, "final"): values[-1] if values and result.status == "completed" else None,
        summary_key(metric, "best"): max(values) if values else None,
        **{summary_key(k, "final"): v for k, v in final.items()},
        "target_metric": metric,
        "target": tracker.target,
    }
    hit = tracker.hit
    summary.update(
        {
            "steps_to_target": hit["step"] if hit else None,
            "epochs_to_target": hit["epoch"] if hit else None,
            "samples_to_target": hit["samples_seen"] if hit else None,
            # the init phase counts towards time to target (it is the cost of data-dependent inits such as GradInit)
            "wall_s_to_target": hit["time/wall_s"] + init_s if hit else None,
        }
    )
    return {
        "status": result.status,
        "diverged_at": result.diverged_at,
        "reason": result.reason,
        "steps": result.step,
        "epochs": result.step / steps_per_epoch,
        "samples_seen": result.samples,
        "wall_s": result.wall,
        "init_s": init_s,
        "n_params": n_params,
        "alpha": init_stats.get("alpha"),
        "n_units": init_stats.get("n_units"),
        "alpha_max_factor": init_stats.get("alpha_max_factor"),
        "summary": summary,
    }


def sweep_folder() -> Path | None:
    """The running multirun's failure folder, or None outside a multirun (or without the SweepReport callback)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return None
    except (ValueError, ImportError):
        return None
    folder = os.environ.get(SWEEP_ENV)
    return Path(folder) if folder else None


def record_sweep_failure(run_dir, message: str, exit_code: int) -> None:
    """One file per failed job in the sweep's folder (no two jobs write the same file, also across nodes)."""
    from hydra.core.hydra_config import HydraConfig

    job = HydraConfig.get().job
    record = {"run_dir": str(run_dir), "exit_code": exit_code, "error": message, "job": job.num,
              "overrides": list(HydraConfig.get().overrides.task)}  # fmt: skip
    write_json(sweep_folder() / f"job{job.num}-{os.getpid()}.json", record)


def sweep_failures(folder: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("job*.json"))]


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


class SweepReport(Callback):
    """Hydra callback: failed jobs do not stop a multirun; the sweep lists them and exits with their number."""

    def on_multirun_start(self, config, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir) / ".sweeps" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[SWEEP_ENV] = str(folder)
        self.folder = folder

    def on_multirun_end(self, config, **kwargs) -> None:
        os.environ.pop(SWEEP_ENV, None)
        failures = sweep_failures(self.folder)
        if not failures:
            return
        lines = [f"{len(failures)} job(s) of this sweep failed (records in {self.folder}):"]
        lines += [f"  exit {f['exit_code']}: {f['run_dir']}: {f['error']}" for f in failures]
        print("\n".join(lines), file=sys.stderr)
        sys.exit(min(len(failures), 255))
