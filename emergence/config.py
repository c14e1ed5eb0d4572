"""Config checks that run before anything is built, and the run's identity.

``validate(cfg)`` rejects impossible values with a message that names the key and what is allowed; Hydra itself
rejects unknown group options (``arch=foo``) and lists the available ones. ``config_fingerprint`` hashes the parts of
the config that change results, so a run dir written by a different configuration is detected.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from emergence import protocol


class ConfigError(ValueError):
    """A config value that cannot work; the message says which key and what is allowed."""


def _get(cfg, key, default=None):
    return OmegaConf.select(cfg, key, default=default)


def validate(cfg: DictConfig) -> None:
    checks = [
        ("seed", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
        ("trainer.epochs", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
        ("trainer.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("trainer.eval_every_steps", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0 = per epoch only)"),
        ("trainer.grad_clip", lambda v: v is None or v > 0, "null or a number > 0"),
        ("trainer.max_steps", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
        ("trainer.device", lambda v: v in ("auto", "cpu", "cuda") or str(v).startswith("cuda:"), "auto, cpu, cuda[:N]"),
        ("trainer.cpu_threads", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
        ("trainer.checkpoint_every_steps", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0 = off)"),
        ("trainer.checkpoint_minutes", lambda v: v is None or v > 0, "null or a number > 0"),
        ("trainer.amp", lambda v: v in ("auto", "bf16", "none"), "auto, bf16 or none"),
        ("optim.lr", lambda v: isinstance(v, (int, float)) and v >= 0, "a number >= 0"),
        ("optim.weight_decay", lambda v: isinstance(v, (int, float)) and v >= 0, "a number >= 0"),
        ("arch.depth", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("arch.width", lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0"),
        (
            "init.alpha",
            lambda v: v is None or (isinstance(v, (int, float)) and v > 0),
            "null (the max_factor rule) or a number > 0 (1 = base init)",
        ),
    ]
    for key, ok, allowed in checks:
        value = _get(cfg, key, default="__absent__")
        if value == "__absent__":
            continue
        if not ok(value):
            raise ConfigError(f"{key}={value!r} is invalid: it must be {allowed}.")
    for key in ("arch", "init", "data"):
        if _get(cfg, key) is None or OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"choose {key}=... explicitly (see conf/{key}/ for the options); no default is applied")
    try:
        protocol.check_validation(cfg)  # validation is never the test set
    except protocol.ValidationIsTestError as exc:
        raise ConfigError(str(exc)) from None


RESULT_NEUTRAL = ("force", "logger", "paths", "run_dir", "labels", "hydra", "trainer.progress", "trainer.device")


def config_fingerprint(cfg: DictConfig) -> str:
    """sha256 of the resolved config without the keys that do not change results (paths, logging, force)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in RESULT_NEUTRAL:
        node, *rest = key.split(".")
        if rest:
            container.get(node, {}).pop(rest[0], None)
        else:
            container.pop(node, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]
