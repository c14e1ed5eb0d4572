"""A saved W&B workspace for one experiment, built with the ``wandb-workspaces`` library.

The runs of a sweep share ``group`` = experiment and ``job_type`` = init, and their config has flat ``init``,
``arch``, ``alpha`` and ``seed`` keys (emergence/log.py), so the workspace filters on the group and draws every panel
grouped by ``init`` with the mean and a standard-error band over seeds:

- accuracy: the target metric per init over epochs; the first epoch alone (x from 0 to 1); the metric against
  wall-clock seconds (time to target; the init's own time is in ``time/init_s``);
- emergence: log10 E from step 0 (E at init) through training;
- per-layer diagnostics: gradient norm and relative update of every layer (``layer/<name>/...``).

Online (``--mode online`` or ``WANDB_MODE=online`` with an API key) it saves the workspace and prints its URL;
offline (the default) it prints what it would create and touches no network.

    python scripts/wandb_workspace.py --experiment mlp_fashion_mnist [--entity ME] [--project emergence] [--mode online]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

GROUP_BY = "init"  # a flat config key (emergence/log.py: wandb_config)


def panel_specs(metric: str = "val/acc", target: float | None = None) -> list[tuple[str, list[dict]]]:
    """The sections and panels as plain data (what the workspace will hold), independent of the library."""
    band = {"groupby": GROUP_BY, "groupby_aggfunc": "mean", "groupby_rangefunc": "stderr"}
    tgt = f" (target {target})" if target is not None else ""
    return [
        ("Accuracy per init (mean ± stderr over seeds)", [
            {"kind": "line", "title": f"{metric} per init", "x": "epoch", "y": [metric], **band},
            {"kind": "line", "title": f"{metric} in the first epoch", "x": "epoch", "y": [metric],
             "range_x": (0.0, 1.0), **band},
            {"kind": "line", "title": f"time to target: {metric} against seconds{tgt}", "x": "time/wall_s",
             "y": [metric], **band},
        ]),
        ("Emergence per init", [
            {"kind": "line", "title": "E at init (step 0) and during training", "x": "epoch",
             "y": ["emergence/log10_E"], **band},
        ]),
        ("Per-layer diagnostics", [
            {"kind": "line", "title": "gradient norm per layer", "x": "Step", "metric_regex": "layer/.*/grad_norm",
             "log_y": True},
            {"kind": "line", "title": "relative update |dW|/|W| per layer", "x": "Step",
             "metric_regex": "layer/.*/rel_update", "log_y": True},
        ]),
    ]  # fmt: skip


def build_workspace(experiment: str, entity: str, project: str, metric: str = "val/acc", target=None):
    """The ``wandb_workspaces`` Workspace (no network until ``save()``)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    sections = []
    for name, panels in panel_specs(metric, target):
        built = []
        for spec in panels:
            kwargs = {k: v for k, v in spec.items() if k not in ("kind",)}
            built.append(wr.LinePlot(**kwargs))
        sections.append(ws.Section(name=name, panels=built, is_open=True))
    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"emergence: {experiment}",
        sections=sections,
        runset_settings=ws.RunsetSettings(filters=[ws.Metric("Group") == experiment], groupby=[ws.Metric("JobType")]),
    )


def describe(experiment: str, entity: str, project: str, metric: str, target) -> str:
    lines = [f"workspace 'emergence: {experiment}' in {entity}/{project}",
             f"  runs: group == {experiment!r}, grouped by job_type (= init); panels grouped by config.{GROUP_BY}"]
    for name, panels in panel_specs(metric, target):
        lines.append(f"  section: {name}")
        for p in panels:
            y = p.get("metric_regex") or ", ".join(p["y"])
            extra = f", x range {p['range_x']}" if "range_x" in p else ""
            lines.append(f"    - {p['title']}: y = {y}, x = {p['x']}{extra}" + (", log y" if p.get("log_y") else ""))
    return "\n".join(lines)  # fmt: skip


def online_possible() -> bool:
    netrc = Path.home() / ".netrc"
    return bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", required=True, help="the W&B group (= the experiment name, e.g. mlp_fashion_mnist)")
    ap.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"), help="W&B entity (default: $WANDB_ENTITY)")
    ap.add_argument("--project", default=os.environ.get("WANDB_PROJECT", "emergence"))
    ap.add_argument("--metric", default="val/acc", help="the experiment's target metric (val/bleu for translation)")
    ap.add_argument("--target", type=float, default=None, help="the target value, shown in a panel title")
    ap.add_argument("--mode", choices=("online", "offline"), default=os.environ.get("WANDB_MODE", "offline"))
    args = ap.parse_args(argv)
    entity = args.entity or "<your-entity>"
    plan = describe(args.experiment, entity, args.project, args.metric, args.target)
    workspace = build_workspace(args.experiment, entity, args.project, args.metric, args.target)  # validates specs
    if args.mode != "online" or not online_possible() or not args.entity:
        why = "offline mode" if args.mode != "online" else "no API key or --entity"
        print(f"[{why}] would create:\n{plan}")
        return 0
    workspace.save()
    print(f"saved {plan.splitlines()[0]}: {workspace.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
