"""Config checks that run before anything is built, and the run's identity.

``validate(cfg)`` rejects impossible values with a one-line message that names the key and what is allowed, and
``check_options`` rejects keys that the class a group instantiates does not take (``+init.foo=1``); Hydra itself
rejects unknown group options (``arch=foo``) and keys that do not exist (``init.alpah=1.2``).

A run's identity: ``RESULT_NEUTRAL`` is the one list of keys that do not change a run's result (where files live,
logging, progress bars, how often it checkpoints: resume is exact). From it derive

- ``config_fingerprint``: a hash of the resolved config without those keys (a run dir written by a different
  configuration is refused, one with only a moved data folder is not); the data's contents are identified separately
  by ``components.data_identity``;
- ``legacy_fingerprints``: the same configuration as older code wrote it (``LEGACY_FORMS``: renamed keys; and
  ``LEGACY_NEUTRAL``), so run dirs written before a rename are still recognized;
- ``run_dir_name``: the run-dir name made of the overrides that matter (conf/hydra/default.yaml), bounded in length,
  never nested by a value holding ``/``;
- the ``variant`` label of ``runinfo.labels_from_hydra`` (the same overrides less the grouping keys).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from emergence import protocol

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# keys (and everything below them) that do not change a run's result
RESULT_NEUTRAL = (
    "force", "run_dir", "labels", "hydra", "logger", "paths",
    "data.root", "data.corpus_dir", "data.cache_dir",  # where the data lives; its contents are hashed instead
    # how the data is found and fetched (file names, download source): what was read is hashed into the run's data
    # identity (components.data_identity; checkpoint.check_data refuses other data), so the reader needs no place here
    "data.reader",
    "trainer.device", "trainer.progress",
    "trainer.checkpoint_every_steps", "trainer.checkpoint_minutes", "trainer.keep_checkpoint",  # resume is exact
)  # fmt: skip
# the list before data identity: run dirs written then are still recognized (their fingerprint used this list)
LEGACY_NEUTRAL = ("force", "logger", "paths", "run_dir", "labels", "hydra", "trainer.progress", "trainer.device",
                  "data.reader")  # then only synthetic data had a reader node (its sizes)  # fmt: skip
IN_PATH = ("name", "experiment", "seed")  # named by other levels of the run-dir path
MAX_NAME = 160  # longer run-dir names keep the overrides that fit plus a hash of the whole name (limit: 255 bytes)


def group_config(group: str, name: str) -> DictConfig:
    """``conf/<group>/<name>.yaml`` composed on its own, its defaults list resolved (interpolations left as written):
    e.g. ``group_config("arch", "transformer_tiny").d_model``. The YAML is where each option's facts live."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    outer = GlobalHydra.instance().hydra  # a caller's Hydra (under @hydra.main or initialize) is set back afterwards
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose(f"{group}/{name}")[group]
    finally:
        GlobalHydra.instance().hydra = outer


class ConfigError(ValueError):
    """A config value that cannot work; the message says which key and what is allowed."""


def _get(cfg, key, default=None):
    return OmegaConf.select(cfg, key, default=default)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(cfg: DictConfig) -> None:
    checks = [
        ("seed", lambda v: _count(v) and v >= 0, "an integer >= 0"),
        ("trainer.epochs", lambda v: _count(v) and v >= 0, "an integer >= 0"),
        ("trainer.batch_size", lambda v: _count(v) and v >= 1, "an integer >= 1"),
        ("trainer.eval_every_steps", lambda v: _count(v) and v >= 0, "an integer >= 0 (0 = per epoch only)"),
        ("trainer.grad_clip", lambda v: v is None or (_number(v) and v > 0), "null or a finite number > 0"),
        ("trainer.diverge_grad_norm", lambda v: v is None or (_number(v) and v > 0), "null or a finite number > 0"),
        ("trainer.max_steps", lambda v: v is None or (_count(v) and v >= 1), "null or an integer >= 1"),
        ("trainer.target", lambda v: v is None or _number(v), "null or a finite number"),
        ("trainer.device", lambda v: v in ("auto", "cpu", "cuda") or str(v).startswith("cuda:"), "auto, cpu, cuda[:N]"),
        ("trainer.cpu_threads", lambda v: v is None or (_count(v) and v >= 1), "null or an integer >= 1"),
        ("trainer.checkpoint_every_steps", lambda v: _count(v) and v >= 0, "an integer >= 0 (0 = off)"),
        ("trainer.checkpoint_minutes", lambda v: v is None or (_number(v) and v > 0), "null or a number > 0"),
        ("trainer.amp", lambda v: v in ("auto", "bf16", "none"), "auto, bf16 or none"),
        ("optim.lr", lambda v: _number(v) and v >= 0, "a finite number >= 0"),
        ("optim.weight_decay", lambda v: _number(v) and v >= 0, "a finite number >= 0"),
        ("arch.depth", lambda v: _count(v) and v >= 1, "an integer >= 1"),
        ("arch.width", lambda v: _number(v) and v > 0, "a number > 0"),
        (
            "init.alpha",
            lambda v: v is None or (_number(v) and v > 0),
            "null (the max_factor rule) or a finite number > 0 (1 = base init)",
        ),
        ("data.train_subset", lambda v: v is None or (_count(v) and v >= 1), "null or an integer >= 1"),
        ("data.test_subset", lambda v: v is None or (_count(v) and v >= 1), "null or an integer >= 1"),
        ("data.val_size", lambda v: _count(v) and v >= 0, "an integer >= 0"),
        ("data.corpus_dir", lambda v: isinstance(v, str) and v.strip() != "", "a folder holding a prepared corpus"),
        ("logger.init_timeout_s", lambda v: _number(v) and v > 0, "a number of seconds > 0"),
    ]
    for key in ("arch", "init", "data"):
        if _get(cfg, key) is None or OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"choose {key}=... explicitly (see conf/{key}/ for the options); no default is applied")
    for key, ok, allowed in checks:
        try:
            value = _get(cfg, key, default="__absent__")
        except Exception as exc:  # an interpolation that cannot be resolved (e.g. a missing environment variable)
            raise ConfigError(f"{key} cannot be resolved: {exc}".splitlines()[0]) from None
        if value == "__absent__":
            continue
        if not ok(value):
            raise ConfigError(f"{key}={value!r} is invalid: it must be {allowed}.")
    check_options(cfg)
    try:
        protocol.check_validation(cfg)  # validation is never the test set
    except protocol.ValidationIsTestError as exc:
        raise ConfigError(str(exc)) from None


def check_options(cfg: DictConfig, groups=("arch", "init", "data", "optim", "schedule", "logger")) -> None:
    """Every key of a node with ``_target_`` must be a parameter of that target (a typo or ``+init.foo`` is caught)."""
    from hydra.utils import get_object

    def check(node, prefix: str) -> None:
        if not isinstance(node, DictConfig) or "_target_" not in node:
            return
        try:
            target = get_object(str(node._target_))
            params = inspect.signature(target).parameters
        except Exception:  # not importable or not introspectable: instantiate reports it
            return
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key in node:
            if str(key).startswith("_"):
                continue
            if not accepts_any and key not in params:
                options = ", ".join(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY or p.default != p.empty)
                raise ConfigError(f"{prefix}.{key} is not an option of {node._target_} (its options: {options}).")
            check(node[key], f"{prefix}.{key}")

    for group in groups:
        check(cfg.get(group), group)


def is_result_neutral(key: str) -> bool:
    """Whether a config key (an override's key, ``+``/``~`` allowed) is one of RESULT_NEUTRAL or below one."""
    key = key.lstrip("+~")
    return any(key == k or key.startswith(k + ".") for k in RESULT_NEUTRAL)


def naming_overrides(overrides) -> list[str]:
    """The overrides that name a run dir: those that change the result and are not another level of the path."""
    out = []
    for o in overrides:
        key = str(o).split("=", 1)[0]
        if not is_result_neutral(key) and key.lstrip("+~") not in IN_PATH:
            out.append(str(o))
    return sorted(out)


def run_dir_name(overrides) -> str:
    """``key=value,...`` of the naming overrides; ``/`` in values escaped, long names cut and given a short hash."""
    parts = [o.replace("%", "%25").replace("/", "%2F") for o in naming_overrides(overrides)]
    name = ",".join(parts) or "default"
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = f"~{hashlib.sha256(name.encode()).hexdigest()[:10]}"  # stands for the overrides left out
    kept = []
    for part in parts:  # whole overrides while they fit
        if len(",".join([*kept, part, digest]).encode()) > MAX_NAME:
            break
        kept.append(part)
    if not kept:  # a single very long override: cut inside it
        kept = [parts[0].encode()[: MAX_NAME - len(digest) - 1].decode(errors="ignore")]
    return ",".join([*kept, digest])


def _run_dir_name_resolver(overrides) -> str:
    return run_dir_name(list(overrides) if isinstance(overrides, (ListConfig, list, tuple)) else [])


if not OmegaConf.has_resolver("emergence.run_dir_name"):
    OmegaConf.register_new_resolver("emergence.run_dir_name", _run_dir_name_resolver)


def config_fingerprint(cfg: DictConfig, neutral: tuple[str, ...] = RESULT_NEUTRAL) -> str:
    """sha256 of the resolved config without the ``neutral`` keys."""
    return _fingerprint(OmegaConf.to_container(cfg, resolve=True), neutral)


def _fingerprint(container: dict, neutral: tuple[str, ...]) -> str:
    container = copy.deepcopy(container)
    for key in neutral:
        *parents, leaf = key.split(".")
        node = container
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _rename_emergence_key(new: str, old: str):
    """A legacy form: ``new`` back to ``old`` in every Emergence init node and in ``optim.layerwise_lr`` (its keys)."""

    def form(node):
        if isinstance(node, dict):
            emergence = node.get("_target_") == "emergence.init.emergence.Emergence"
            out = {}
            for k, v in node.items():
                lwl = k == "layerwise_lr" and isinstance(v, dict)
                v = {(old if kk == new else kk): vv for kk, vv in v.items()} if lwl else form(v)
                out[old if emergence and k == new else k] = v
            return out
        return [form(v) for v in node] if isinstance(node, list) else node

    return form


# How older code wrote today's resolved config, newest change first: each maps a config container to the form the code
# before that change wrote (each form applies on top of the ones before it in this list).
LEGACY_FORMS = (
    ("before init.exponent was renamed init.exponent_rule", _rename_emergence_key("exponent_rule", "exponent")),
)


def legacy_fingerprints(cfg: DictConfig) -> dict[str, str]:
    """{fingerprint: which older code wrote it} of this configuration in every legacy form (``LEGACY_FORMS``, each
    under ``RESULT_NEUTRAL`` and ``LEGACY_NEUTRAL``), leaving out today's own fingerprint."""
    container = OmegaConf.to_container(cfg, resolve=True)
    forms = [("", container)]
    for why, form in LEGACY_FORMS:
        container = form(container)
        forms.append((why, container))
    today = _fingerprint(forms[0][1], RESULT_NEUTRAL)
    out = {}
    for why, c in forms:
        for neutral, era in ((RESULT_NEUTRAL, ""), (LEGACY_NEUTRAL, "before data identity")):
            fp = _fingerprint(c, neutral)
            if fp != today:
                out.setdefault(fp, ", ".join(filter(None, (era, why))))
    return out
