"""Emergence E at initialization against alpha, the inverse ramp and each baseline initializer.

For each architecture (a conf/arch name) and seed: build the model exactly as the runner does (same seed streams),
apply torch_default, xavier, kaiming, and emergence at every alpha (forward and inverse ramp), and measure E on the
runner's fixed probe batch (conf `measure` settings). Writes ``<out>/emergence_vs_alpha.csv`` (one row per
arch x init x alpha x ramp, mean ± sd over seeds of log10 E, E_rel and the per-layer active fractions) and
``<out>/emergence_vs_alpha.png``.

    python scripts/emergence_vs_alpha.py --arch mlp --data fashion_mnist --alphas 1 1.1 1.2 1.5 2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from emergence import seeding
from emergence.components import build_initialized_model
from emergence.metrics.emergence import measure

ROOT = Path(__file__).resolve().parent.parent


def variants(alphas):
    yield "torch_default", None, False, []
    yield "xavier", None, False, []
    yield "kaiming", None, False, []
    for alpha in alphas:
        for inverse in (False, True):
            if inverse and alpha == 1:
                continue
            yield "emergence", alpha, inverse, [f"init.alpha={alpha}", f"init.inverse={str(inverse).lower()}"]


def measure_arch(arch, data, alphas, seeds, extra):
    rows = []
    task = None
    for init, alpha, inverse, overrides in variants(alphas):
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"arch={arch}", f"init={init}", f"data={data}", *overrides, *extra])
        if task is None:
            task = instantiate(cfg.data).setup(torch.device("cpu"))
        per_seed = []
        for seed in seeds:
            model = build_initialized_model(cfg, seed, task).model  # the runner's seed, build, initialize
            probe = task.probe_inputs(cfg.measure.probe_size, seeding.generator(seed, "probe"))
            per_seed.append(
                measure(
                    model,
                    probe,
                    threshold=cfg.measure.threshold,
                    bn_mode=cfg.measure.bn_mode,
                    count=cfg.measure.count,
                    product_over=cfg.measure.product_over,
                )
            )
        log10 = [s["log10_E"] for s in per_seed]
        finite = [v for v in log10 if math.isfinite(v)]
        layers = [k for k in per_seed[0] if k.startswith("active_frac/")]
        row = {
            "arch": arch,
            "data": data,
            "init": init,
            "alpha": alpha if alpha is not None else "",
            "ramp": ("inverse" if inverse else "forward") if alpha is not None else "",
            "n_seeds": len(seeds),
            "log10_E_mean": statistics.fmean(finite) if finite else -math.inf,
            "log10_E_sd": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "n_zero_E": len(log10) - len(finite),
            "E_rel_mean": statistics.fmean(float(s["E_rel"]) for s in per_seed),
            "active_frac_mean": " ".join(f"{statistics.fmean(s[k] for s in per_seed):.3f}" for k in layers),
        }
        rows.append(row)
        label = f"{init}" + (f" alpha={alpha} {row['ramp']}" if alpha is not None else "")
        print(
            f"{arch:10s} {label:32s} log10 E = {row['log10_E_mean']:.3f} ± {row['log10_E_sd']:.3f}  "
            f"active frac per layer: {row['active_frac_mean']}"
        )
    return rows


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = sorted({r["arch"] for r in rows})
    fig, axes = plt.subplots(1, len(archs), figsize=(5.5 * len(archs), 4), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        mine = [r for r in rows if r["arch"] == arch]
        for ramp, style in (("forward", "o-"), ("inverse", "s--")):
            pts = sorted(
                (float(r["alpha"]), r["log10_E_mean"], r["log10_E_sd"])
                for r in mine
                if r["init"] == "emergence" and (r["ramp"] == ramp or float(r["alpha"]) == 1)
            )
            pts = [p for p in pts if math.isfinite(p[1])]
            if pts:
                ax.errorbar(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    [p[2] for p in pts],
                    fmt=style,
                    label=f"emergence ({ramp} ramp)",
                    capsize=3,
                )
        for r in mine:
            if r["init"] != "emergence" and math.isfinite(r["log10_E_mean"]):
                ax.axhline(
                    r["log10_E_mean"],
                    lw=0.8,
                    ls=":",
                    color={"torch_default": "gray", "xavier": "green", "kaiming": "red"}[r["init"]],
                    label=r["init"],
                )
        ax.set_xlabel("alpha")
        ax.set_ylabel("log10 E at init")
        ax.set_title(f"{arch} on {mine[0]['data']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["mlp"])
    ap.add_argument(
        "--data", default="fashion_mnist", help="conf/data name (the probe comes from its validation split)"
    )
    ap.add_argument("--alphas", nargs="+", type=float, default=[1.0, 1.1, 1.2, 1.5, 2.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default="results")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. measure.count=fraction_active")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for arch in args.arch:
        rows += measure_arch(arch, args.data, args.alphas, args.seeds, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "emergence_vs_alpha.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "emergence_vs_alpha.png")
    print(f"wrote {out / 'emergence_vs_alpha.csv'} and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
