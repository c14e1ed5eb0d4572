"""Learning curves from the run dirs: ``results/<experiment>_curves.png``.

One panel per data x arch: the target metric (val/acc) against epochs, mean over completed seeds with a ±1 sd band,
one line per init (and variant). Reads ``metrics.jsonl`` and ``run.json`` only (never W&B).

    python scripts/plot.py [--runs runs] [--out results]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emergence.log import read_metrics  # noqa: E402
from emergence.rundirs import run_records  # noqa: E402


def curves(runs_dir: Path):
    """{experiment: {(data, arch): {label: [(epochs, values), ...]}}} and {experiment: its target metric}."""
    out = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    metrics = {}
    for run_dir, run, _error in run_records(runs_dir):
        if run is None or run.get("status") != "completed":
            continue
        lab = run["labels"]
        metric = metrics.setdefault(lab["experiment"], run.get("summary", {}).get("target_metric", "val/acc"))
        points = [(r["epoch"], r[metric]) for r in read_metrics(run_dir / "metrics.jsonl") if metric in r]
        if points:
            label = lab["init"] + (f" [{lab['variant']}]" if lab.get("variant") else "")
            out[lab["experiment"]][(lab["data"], lab["arch"])][label].append(points)
    return out, metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    data, metrics = curves(Path(args.runs))
    if not data:
        print(f"no completed runs under {args.runs}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for experiment, panels in data.items():
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
        for ax, ((dataset, arch), lines) in zip(axes[0], sorted(panels.items())):
            for label, seeds in sorted(lines.items()):
                n = min(len(s) for s in seeds)
                epochs = np.array([p[0] for p in seeds[0][:n]])
                values = np.array([[p[1] for p in s[:n]] for s in seeds])
                mean, sd = values.mean(0), values.std(0)
                ax.plot(epochs, mean, label=f"{label} (n={len(seeds)})")
                ax.fill_between(epochs, mean - sd, mean + sd, alpha=0.2)
            ax.set_title(f"{experiment}: {arch} on {dataset}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(metrics[experiment])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{experiment}_curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
