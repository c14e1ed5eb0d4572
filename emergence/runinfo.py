"""What a run records about itself: labels, environment (git commit, package versions, device), summary metrics.

``run.json`` is written atomically (temporary file, flush, fsync, rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

PACKAGES = ("torch", "torchvision", "numpy", "hydra-core", "omegaconf", "wandb", "sacrebleu", "sentencepiece")
# overrides that do not name a variant of the experiment (they are the grouping keys or do not change results)
NOT_VARIANT = ("arch", "init", "data", "seed", "experiment", "force", "logger", "run_dir", "debug")
NOT_VARIANT_PREFIX = ("logger.", "paths.", "trainer.device", "trainer.progress", "hydra")


def write_json(path: Path, obj: dict) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, default=_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def environment_info(device: torch.device) -> dict:
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
    variant = [
        o
        for o in overrides
        if o.split("=")[0].lstrip("+~") not in NOT_VARIANT and not o.lstrip("+~").startswith(NOT_VARIANT_PREFIX)
    ]
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


def _first(history, metric, epoch):
    for r in history:
        if r.get(metric) is not None and abs(r["epoch"] - epoch) < 1e-9:
            return r[metric]
    return None


def summarize(result, final, tracker, metric, init_s, n_params, init_stats) -> dict:
    """Status, counters and the headline numbers (init, epoch 1, final, best, time to target)."""
    history = result["history"]
    values = [r[metric] for r in history if r.get(metric) is not None and math.isfinite(r[metric])]
    key = metric.replace("/", "_")
    summary = {
        f"{key}_init": _first(history, metric, 0),
        f"{key}_epoch1": _first(history, metric, 1),
        f"{key}_final": values[-1] if values and result["status"] == "completed" else None,
        f"{key}_best": max(values) if values else None,
        **{k.replace("/", "_") + "_final": v for k, v in final.items()},
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
        "status": result["status"],
        "diverged_at": result["diverged_at"],
        "reason": result["reason"],
        "steps": result["step"],
        "epochs": result["step"] / result["steps_per_epoch"],
        "samples_seen": result["samples"],
        "wall_s": result["wall"],
        "init_s": init_s,
        "n_params": n_params,
        "alpha": init_stats.get("alpha"),
        "n_units": init_stats.get("n_units"),
        "alpha_max_factor": init_stats.get("alpha_max_factor"),
        "summary": summary,
    }
