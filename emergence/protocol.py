"""Protocol rules that make runs worth judging (README "Results"): validation is never the test set, and a run that
ends at chance accuracy is a collapsed run, counted beside diverged ones.

- ``check_validation(cfg)``: a classification config whose ``data.val_size`` is 0 would evaluate the test set every
  epoch (epoch-1 accuracy, best checkpoint, LR and alpha choice and the emergence probe would all read test): a
  configuration error. Called by ``config.validate``.
- ``is_collapsed(record)``: a completed classification run whose final validation accuracy is within
  ``COLLAPSE_MARGIN`` of chance (1 / number of classes) learnt nothing; the tables count it (scripts/aggregate.py).
"""

from __future__ import annotations

from omegaconf import OmegaConf

COLLAPSE_MARGIN = 0.02  # accuracy points (as a fraction) above chance that still count as collapsed
CLASSES = {"cifar100": 100}  # every other image dataset of the suite has 10 classes


class ValidationIsTestError(ValueError):
    """The validation split would be the test set."""


def check_validation(cfg) -> None:
    """Raise if the run's validation split is its test set (classification with ``data.val_size: 0``)."""
    target = str(OmegaConf.select(cfg, "data._target_", default="") or "")
    val_size = OmegaConf.select(cfg, "data.val_size", default=None)
    if target.endswith("ClassificationTask") and val_size == 0:
        raise ValidationIsTestError(
            "data.val_size=0 makes the validation split the test set (epoch-1 accuracy, best checkpoint, LR and "
            "alpha choice would read test): hold out training images, e.g. data.val_size=5000 (CIFAR, MNIST)."
        )


def chance(record: dict) -> float | None:
    """Chance accuracy of a classification run (from its run.json record), None for other tasks."""
    config = record.get("config") or {}
    data = config.get("data") or {}
    if not str(data.get("_target_", "")).endswith("ClassificationTask"):
        return None
    return 1.0 / CLASSES.get(data.get("dataset"), 10)


def is_collapsed(record: dict) -> bool:
    """A completed classification run whose final val accuracy is within COLLAPSE_MARGIN of chance."""
    level = chance(record)
    from emergence.runinfo import summary_key  # here: runinfo imports config, which imports this module

    final = (record.get("summary") or {}).get(summary_key("val/acc", "final"))
    if record.get("status") != "completed" or level is None or final is None:
        return False
    return final <= level + COLLAPSE_MARGIN
