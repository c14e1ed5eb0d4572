"""The pieces ``train.run`` assembles: device, the initialized model (``build_initialized_model``: seed, build,
initialize, the one sequence the runner and the scripts share), the emergence probe and the diagnostics hook, RNG
state, building from a config node with errors that name the group, the data's identity, and marking a run failed.

Kept out of ``train.py`` so that ``run(cfg)`` stays one readable page.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

from emergence import checkpoint, seeding
from emergence.config import ConfigError
from emergence.init import DATA_STREAMS
from emergence.init.layers import trace_units
from emergence.metrics import emergence as emergence_measure
from emergence.metrics.layer_stats import LayerTracker
from emergence.runinfo import write_json

log = logging.getLogger("emergence")
CPU = torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but CUDA is not available; use trainer.device=cpu or auto")
    return torch.device(name)


def get_rng() -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def initialize(initializer, model, example, task, seed, device, run_dir: Path | None, fingerprint: str, use_cache=True):
    """Apply the initializer as the contract in emergence/init/__init__.py says; returns (stats, seconds).

    A data-dependent initializer gets ``batches=task.init_batches(batch_size, generator, batch_kind)`` (drawn from its
    ``data_stream``: the ``init_data`` stream, or the ``init`` generator it is given itself) and ``device=``. One with
    ``cache`` true and ``save``/``load`` has its result cached in the run dir under the config fingerprint and reused
    on a rerun (seconds: the ``<name>/time_s`` it reported when it ran).
    """
    generator = seeding.generator(seed, "init")
    t0 = time.perf_counter()
    if not getattr(initializer, "needs_data", False):
        return initializer(model, example, generator), time.perf_counter() - t0
    cached = bool(getattr(initializer, "cache", False)) and run_dir is not None  # scripts keep no cache
    cache = Path(run_dir or ".") / "init_cache.pt"
    stats = initializer.load(model, cache, key=fingerprint) if cached and use_cache else None
    if stats is not None:
        log.info("reusing the learned init cached in %s", cache)
        seconds = [v for k, v in stats.items() if k.endswith("/time_s") and not k.startswith("base/")]
        return stats, float(seconds[0]) if seconds else time.perf_counter() - t0
    stream = getattr(initializer, "data_stream", "init_data")
    if stream not in DATA_STREAMS:
        raise ValueError(f"{type(initializer).__name__}.data_stream must be in {list(DATA_STREAMS)}; got {stream!r}")
    data = generator if stream == "init" else seeding.generator(seed, stream)  # "init": drawn after its own draws
    batches = task.init_batches(initializer.batch_size, data, getattr(initializer, "batch_kind", "batch"))
    stats = initializer(model, example, generator, batches=batches, device=device)
    if cached:
        initializer.save(cache, key=fingerprint)
    return stats, time.perf_counter() - t0


@dataclass
class InitializedModel:
    """``build_initialized_model``'s result: the model, its initializer, the init's statistics and seconds."""

    model: nn.Module
    initializer: object
    stats: dict
    seconds: float


def build_initialized_model(cfg, seed: int, task, *, device=CPU, run_dir: Path | None = None, cache_key: str = "",
                            use_cache: bool = True, apply_init: bool = True) -> InitializedModel:
    """Seed the ``model`` stream, build ``cfg.arch`` for the task's data and apply ``cfg.init`` (timed), on the CPU, so
    the same seed gives the same weights on any device. ``run_dir``: where a data-dependent init keeps its cache (under
    ``cache_key``) and a learned init its per-step ``history`` (``init_history.jsonl``). ``apply_init=False`` (a resumed
    run, whose weights come from its checkpoint) builds the model and the initializer only (stats {}, 0 seconds)."""
    torch.manual_seed(seeding.stream_seed(seed, "model"))
    model = build("arch", cfg.arch, **task.model_kwargs())
    example = tuple(t.cpu() for t in task.example_inputs())
    initializer = build("init", cfg.init)
    if not apply_init:
        return InitializedModel(model, initializer, {}, 0.0)
    stats, seconds = initialize(initializer, model, example, task, seed, device, run_dir, cache_key, use_cache)
    if run_dir is not None and getattr(initializer, "history", None):
        with open(Path(run_dir) / "init_history.jsonl", "w", encoding="utf-8") as f:  # a learned init's per-step record
            f.writelines(json.dumps(r, default=float) + "\n" for r in initializer.history)
    return InitializedModel(model, initializer, stats, seconds)


def data_identity(task) -> str:
    """A content hash of the data a run reads: part of its identity, so a run made on other data is refused.

    Image tasks: the arrays of every split as trained and evaluated on (after the split and subsets). Translation:
    the corpus files and the tokenizer model(s) (``TranslationData.identity``).
    """
    identity = getattr(getattr(task, "data", None), "identity", None)
    if identity is not None or not hasattr(task, "splits"):
        return identity
    h = hashlib.sha256()
    for name, tensors in sorted(task.splits.items()):
        for t in tensors:
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().numpy())
    return h.hexdigest()[:16]


def use_feature(value, device: torch.device) -> bool:
    """A trainer switch (``amp``, ``channels_last``): ``auto`` means on CUDA only; ``none``/false off; true/bf16 on."""
    if value == "auto":
        return device.type == "cuda"
    return value not in (False, "none", None)


def emergence_probe(mcfg, task, seed: int, n_params: int):
    """``model -> {emergence/...}``: the emergence measure on a fixed, seeded probe batch (the ``measure`` config), or
    None when disabled."""
    if not mcfg.enabled:
        return None
    probe = task.probe_inputs(mcfg.probe_size, seeding.generator(seed, "probe"))
    options = {k: mcfg[k] for k in ("threshold", "bn_mode", "count", "product_over")}

    def measure(model) -> dict:
        stats = emergence_measure.measure(model, probe, n_params=n_params, **options)
        out = {
            "emergence/log10_E": stats["log10_E"],
            "emergence/E": float(stats["E"]),
            "emergence/E_rel": float(stats["E_rel"]),
        }
        out.update(
            {f"emergence/active_frac/{k.split('/', 1)[1]}": v for k, v in stats.items() if k.startswith("active_frac/")}
        )
        return out

    return measure


def diagnostics_hook(dcfg, model, example):
    """(``step -> {layer/...}`` every ``every_steps`` steps: per-layer grad norm, relative update, distance from init;
    its layer tracker, whose state a checkpoint holds), or (None, None) when off."""
    every = int(dcfg.every_steps)
    if every <= 0:
        return None, None
    tracker = LayerTracker([(w_name, w) for unit in trace_units(model, example) for w_name, w in unit.weights])

    def on_step(step: int) -> dict | None:
        return tracker.stats(step) if step % every == 0 else None

    return on_step, tracker


def keep_as_attempt(path: Path) -> None:
    """Rename a non-empty ``path`` to ``<name>.attempt<n>`` (the first free n): an earlier attempt is never lost."""
    if path.exists() and path.stat().st_size:
        n = 1
        while path.with_name(f"{path.name}.attempt{n}").exists():
            n += 1
        path.rename(path.with_name(f"{path.name}.attempt{n}"))


def build(group: str, node, **kwargs):
    """``instantiate`` with the group named in the error: a bad value is a configuration error (exit 2)."""
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:
        raise as_config_error(exc, group) from exc


def as_config_error(exc: BaseException, group: str = "data") -> BaseException:
    """ValueError/TypeError raised while building from the config -> a one-line ConfigError naming the group."""
    cause = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ is not None else exc
    if isinstance(cause, (FileNotFoundError, OSError)):
        return cause
    if isinstance(cause, (ValueError, TypeError)) and not isinstance(cause, ConfigError):
        return ConfigError(f"{group}: {cause}".splitlines()[0])
    return exc


def record_failure(run_dir: Path, info: dict, exc: BaseException) -> None:
    """Mark the run failed in run.json (if that write is possible: the disk may be full)."""
    error = str(checkpoint.DiskFull(run_dir)) if checkpoint.is_disk_full(exc) else f"{type(exc).__name__}: {exc}"
    try:
        write_json(run_dir / "run.json", {**info, "status": "failed", "error": error})
    except OSError:
        log.warning("could not mark %s failed in run.json", run_dir)
