"""The prepared check for the first CUDA machine: does every CUDA path run, how fast, and what will the paper cost?

    make gpu-check                                         # = python -m scripts.bench.gpu_check --device cuda
    python -m scripts.bench.gpu_check --device cpu --smoke # the same code on the CPU, small stand-ins (the tests)

1. CLI smoke: every family through the real CLI (``python -m emergence.train``) on the device, each init once
   (MLP, VGG-19 +/- BN, ResNet-110 +/- BN on synthetic CIFAR-shaped data; the IWSLT Transformer preset on a synthetic
   corpus), every run must complete; then the same seed with kaiming on the CPU and on the device (fp32: amp and
   channels_last off) must agree: final train and val loss within ``--tol`` relative (TF32 convolutions included).
2. Throughput: ResNet-110 and VGG-19 training images/s (synthetic CIFAR-10 batches on the device, batch 128, SGD)
   with bf16 autocast + channels_last, with and without ``torch.compile``; the IWSLT and WMT Transformers' target
   tokens/s (bf16) and model FLOP utilisation (FLOPs of one step from ``torch.utils.flop_counter``, the peak from the
   device name or ``--peak-tflops``); the MLP's images/s at batch 64.
3. Costs: GradInit objective / constraint iterations and a training step (ResNet-110, batch 128), the emergence init
   (ResNet-110 and the IWSLT Transformer), one checkpoint of a ResNet-110 run.
4. Projection: one paper-scale run per family (CIFAR: 200 epochs of 50k images; IWSLT: 80 epochs; WMT: 10 epochs;
   MLP: 20 epochs of 60k) and ``make reproduce SCALE=paper`` (run counts of experiments/*.sh) on ``--gpus`` GPUs.
5. K = 1, 2, 4 concurrent ResNet-20 training processes on one device: total images/s, to choose runs per GPU.
Section 1 is in scripts/bench/gpu_smoke.py; sections 2, 3 and 5 are in scripts/bench/gpu_rates.py.
Everything goes to ``--out`` as gpu_check.json and gpu_check.md. ``--smoke`` shrinks every size and swaps in small
stand-ins (ResNet-20/VGG-11 at width 1/4, the tiny Transformer, compile backend ``eager``); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from scripts.bench.gpu_rates import concurrency, costs, throughput, worker
from scripts.bench.gpu_smoke import cli_smoke
from scripts.bench.timing import ROOT, machine, machine_line, sync

# bf16 dense tensor-core peaks (TFLOP/s) by device name; --peak-tflops overrides
PEAKS = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "L4": 121, "A10": 125, "RTX 4090": 165, "V100": 125}
# paper-scale run counts: experiments/*.sh at SCALE=paper with their default INITS and SEEDS
PAPER_RUNS = {"vgg19": 50, "resnet110": 50, "mlp": 86, "iwslt": 15, "wmt": 9}
CIFAR_IMAGES, MLP_IMAGES = 50_000, 60_000
RESULTS: dict = {}


def projection(args) -> None:
    """Section 4: paper-scale GPU hours from the measured throughput."""
    img, tf = RESULTS["throughput"]["images_per_s"], RESULTS["throughput"]["transformer"]

    def best(prefix):
        return max(v for k, v in img.items() if k.startswith(prefix))

    cnn = list(dict.fromkeys(k.split()[0] for k in img if not k.startswith("mlp")))
    hours = {f"{cnn[0]} (200 epochs)": 200 * CIFAR_IMAGES / best(cnn[0]) / 3600,
             f"{cnn[1]} (200 epochs)": 200 * CIFAR_IMAGES / best(cnn[1]) / 3600,
             "mlp (20 epochs)": 20 * MLP_IMAGES / best("mlp") / 3600}  # fmt: skip
    names = list(tf)
    hours[f"transformer {names[0]} (80 epochs)"] = 80 * args.iwslt_tokens / tf[names[0]]["tokens_per_s"] / 3600
    if len(names) > 1:
        hours[f"transformer {names[1]} (10 epochs)"] = 10 * args.wmt_tokens / tf[names[1]]["tokens_per_s"] / 3600
    counts = dict(zip(hours, [PAPER_RUNS["resnet110"], PAPER_RUNS["vgg19"], PAPER_RUNS["mlp"], PAPER_RUNS["iwslt"],
                              PAPER_RUNS["wmt"]]))  # fmt: skip
    total = sum(hours[k] * counts[k] for k in hours)
    RESULTS["projection"] = {"hours_per_run": hours, "runs": counts, "gpu_hours_total": total,
                             "wall_hours_on_gpus": {n: total / n for n in sorted({1, 8, args.gpus})},
                             "note": "training only (evaluation, GradInit and data preparation excluded); one run "
                             "per GPU; tokens per epoch are estimates (--iwslt-tokens, --wmt-tokens)"}  # fmt: skip


def flat(body, prefix: str = ""):
    """(key path, value) leaves of nested dicts."""
    if isinstance(body, dict):
        for k, v in body.items():
            yield from flat(v, f"{prefix}{k} / ")
    else:
        yield prefix.rstrip(" /"), body


def markdown() -> str:
    lines = ["# GPU check", "", f"Machine: {machine_line(RESULTS['machine'])}.", ""]
    for section, body in RESULTS.items():
        if section in ("machine", "seconds"):
            continue
        lines += [f"## {section}", "", "| item | value |", "|---|---|"]
        for key, value in flat(body):
            if key.endswith("stderr_tail"):
                continue
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| {key} | {text} |")
        lines.append("")
    lines.append(f"Total: {RESULTS['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true", help="small stand-ins and sizes: checks that it runs")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "gpu_check")
    ap.add_argument("--tol", type=float, default=2e-2, help="relative CPU-vs-device loss tolerance")
    ap.add_argument("--peak-tflops", dest="peak", type=float, default=None, help="device peak (bf16 dense)")
    ap.add_argument("--gpus", type=int, default=8, help="GPUs for the projected make reproduce SCALE=paper")
    ap.add_argument("--iwslt-tokens", type=float, default=4.0e6, help="target tokens per IWSLT'14 epoch (estimate)")
    ap.add_argument("--wmt-tokens", type=float, default=1.4e8, help="target tokens per WMT'16 epoch (estimate)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-backend", default=None, help="torch.compile backend (inductor; eager with --smoke)")
    ap.add_argument("--sections", nargs="+", default=["cli", "throughput", "costs", "concurrency"])
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.device, args.smoke) or 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run on a GPU machine, or use --device cpu --smoke", file=sys.stderr)
        return 2
    args.compile_backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    if args.peak is None and args.device.startswith("cuda"):
        name = torch.cuda.get_device_name(args.device)
        args.peak = next((v for k, v in PEAKS.items() if k in name), None)
    args.out.mkdir(parents=True, exist_ok=True)
    RESULTS["machine"] = machine(args.device)
    t0 = time.perf_counter()
    errors = {}
    for section, fn in [("cli", cli_smoke), ("throughput", throughput), ("costs", costs), ("concurrency", concurrency)]:
        if section in args.sections:
            try:  # one failing section must not lose the others' figures
                RESULTS.update(fn(*((args, args.out) if section == "cli" else (args,))))
                sync(args.device)
            except Exception as e:  # noqa: BLE001 - recorded, reported, and the exit code says so
                errors[section] = f"{type(e).__name__}: {e}"
                print(f"[{section}] FAILED: {errors[section]}", file=sys.stderr, flush=True)
    if "throughput" in RESULTS:
        projection(args)
    if errors:
        RESULTS["errors"] = errors
    RESULTS["seconds"] = time.perf_counter() - t0
    (args.out / "gpu_check.json").write_text(json.dumps(RESULTS, indent=1, default=str) + "\n")
    (args.out / "gpu_check.md").write_text(markdown())
    failed = list(errors)
    failed += [k for k, v in RESULTS.get("cli_smoke", {}).items() if v["rc"] or v["not_completed"] or not v["runs"]]
    failed += [k for k, v in RESULTS.get("agreement", {}).get("runs", {}).items() if not v["ok"]]
    print(f"wrote {args.out}/gpu_check.json and .md in {RESULTS['seconds']:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
