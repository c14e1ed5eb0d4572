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
Everything goes to ``--out`` as gpu_check.json and gpu_check.md. ``--smoke`` shrinks every size and swaps in small
stand-ins (ResNet-20/VGG-11 at width 1/4, the tiny Transformer, compile backend ``eager``); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from emergence import checkpoint
from emergence.init.emergence import Emergence
from emergence.init.kaiming import Kaiming
from emergence.init.xavier import Xavier
from emergence.models.mlp import MLP
from emergence.models.resnet import ResNet
from emergence.models.vgg import VGG
from scripts.bench import gradinit as gi
from scripts.bench import transformer as tb
from scripts.bench.timing import ROOT, clock, machine, machine_line, sync
from scripts.bench.translation import synthetic_corpus

INITS = ["torch_default", "xavier", "kaiming", "emergence"]  # + gradinit, run separately (it takes init.iterations)
# bf16 dense tensor-core peaks (TFLOP/s) by device name; --peak-tflops overrides
PEAKS = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "L4": 121, "A10": 125, "RTX 4090": 165, "V100": 125}
# paper-scale run counts: experiments/*.sh at SCALE=paper with their default INITS and SEEDS
PAPER_RUNS = {"vgg19": 50, "resnet110": 50, "mlp": 86, "iwslt": 15, "wmt": 9}
CIFAR_IMAGES, MLP_IMAGES = 50_000, 60_000
RESULTS: dict = {}


def cli(out: Path, device: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMERGENCE_RUNS": str(out / "runs"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "emergence.train", "-m", "debug=smoke", f"trainer.device={device}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def run_records(out: Path, name: str) -> list[dict]:
    return [json.loads(p.read_text()) | {"dir": p.parent} for p in sorted((out / "runs" / name).rglob("run.json"))]


def final_losses(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if "train/loss" in r][-1]
    return {k: last[k] for k in ("train/loss", "val/loss")}


def cli_smoke(args, out: Path) -> None:
    steps, batch = (2, 16) if args.smoke else (3, 64)
    image = ["data=synthetic", "data.reader.shape=[3,32,32]", f"trainer.batch_size={batch}",
             f"trainer.max_steps={steps}"]
    archs = "mlp,resnet20_nobn" if args.smoke else "mlp,vgg19,vgg19_nobn,resnet110,resnet110_nobn"
    inits = ["kaiming", "emergence"] if args.smoke else INITS
    corpus = synthetic_corpus(Path(tempfile.mkdtemp(dir=out)), n_train=300 if args.smoke else 3000)
    text = [f"data.corpus_dir={corpus}", "data.src_lang=xx", "data.tgt_lang=yy", f"data.cache_dir={out}/cache",
            "data.vocab_size=300", "data.bleu_every_epochs=0", "data.test_subset=8", "data.beam=1",
            "data.max_tokens=512" if args.smoke else "data.max_tokens=4096", f"trainer.max_steps={steps}",
            "experiment=translation_ding", f"arch={'transformer_tiny' if args.smoke else 'transformer_iwslt_de_en'}"]
    jobs = {
        "images": [f"arch={archs}", f"init={','.join(inits)}", *image],
        "images_gradinit": [f"arch={archs}", "init=gradinit", "init.iterations=2", f"init.batch_size={batch}", *image],
        "text": [f"init={','.join(inits)}", *text],
        "text_gradinit": ["init=gradinit", "init.iterations=2", *text],
    }
    smoke = {}
    for name, overrides in jobs.items():
        t0 = time.perf_counter()
        proc = cli(out, args.device, f"name=smoke_{name}", *overrides)
        records = run_records(out, f"smoke_{name}")
        bad = [r["labels"]["name"] for r in records if r.get("status") != "completed"]
        smoke[name] = {"rc": proc.returncode, "runs": len(records), "not_completed": bad,
                       "seconds": time.perf_counter() - t0, "stderr_tail": proc.stderr[-1500:]}  # fmt: skip
        print(f"[cli] {name}: rc {proc.returncode}, {len(records)} runs, not completed {bad}", flush=True)
    agree = {}
    fp32 = ["init=kaiming", "trainer.amp=none", "trainer.channels_last=false", "trainer.cpu_threads=null"]
    for name, overrides in {"images": [f"arch={archs}", *image], "text": text}.items():
        losses = {}
        for dev in ("cpu", args.device):
            cli(out, dev, f"name=agree_{name}_{dev}", *fp32, *overrides)
            records = run_records(out, f"agree_{name}_{dev}")
            losses[dev] = {r["labels"]["name"]: final_losses(r["dir"]) for r in records if r["status"] == "completed"}
        for run_name, cpu in losses["cpu"].items():
            dev = losses[args.device].get(run_name)
            rel = None if dev is None else max(abs(dev[k] - cpu[k]) / max(abs(cpu[k]), 1e-12) for k in cpu)
            ok = rel is not None and rel <= args.tol
            agree[run_name] = {"cpu": cpu, "device": dev, "max_rel_diff": rel, "ok": ok}
            print(f"[agree] {run_name}: max relative difference {rel}", flush=True)
    RESULTS["cli_smoke"], RESULTS["agreement"] = smoke, {"tolerance": args.tol, "runs": agree}


def images_per_s(model, batch: int, shape, steps: int, device, compiled: bool, backend: str) -> float:
    model = model.to(device).to(memory_format=torch.channels_last) if len(shape) == 3 else model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step_model = torch.compile(model, backend=backend) if compiled else model
    x = torch.randn(batch, *shape, device=device)
    x = x.to(memory_format=torch.channels_last) if len(shape) == 3 else x
    y = torch.randint(10, (batch,), device=device)

    def step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            loss = F.cross_entropy(step_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    return batch * steps / clock(lambda: [step() for _ in range(steps)], device)


def transformer_rates(name: str, args) -> dict:
    small = args.smoke
    ns = argparse.Namespace(vocab=500 if small else 10_000, tokens=256 if small else 4096, seq_len=24,
                            device=args.device, steps=2 if small else 20, warmup=1 if small else 3)  # fmt: skip
    model = tb.make_model(name, ns.vocab, args.device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98))
    src, prev, target = tb.random_batch(torch.Generator().manual_seed(0), ns.vocab, ns.tokens, ns.seq_len, ns.device)

    def step():
        with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16):
            logits = model(src, prev)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=tb.PAD,
                                   label_smoothing=0.1)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(ns.warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    tokens = int(target.ne(tb.PAD).sum())
    rate = tokens * ns.steps / clock(lambda: [step() for _ in range(ns.steps)], args.device)
    flops = counter.get_total_flops() * rate / tokens
    mfu = flops / (args.peak * 1e12) if args.peak else None
    return {"tokens_per_s": rate, "flops_per_token": counter.get_total_flops() / tokens, "achieved_tflops":
            flops / 1e12, "mfu": mfu}  # fmt: skip


def throughput(args) -> None:
    steps = 2 if args.smoke else 30
    cnns = {"resnet20": lambda: ResNet((3, 32, 32), 10, depth=20, norm="batch", width=0.25),
            "vgg11": lambda: VGG((3, 32, 32), 10, depth=11, norm="batch", width=0.25)} if args.smoke else {
            "resnet110": lambda: ResNet((3, 32, 32), 10, depth=110, norm="batch"),
            "vgg19": lambda: VGG((3, 32, 32), 10, depth=19, norm="batch")}  # fmt: skip
    batch = 8 if args.smoke else 128
    rates = {}
    for name, build in cnns.items():
        for compiled in (False, True):
            if compiled and args.no_compile:
                continue
            torch.manual_seed(0)
            key = f"{name} bf16+channels_last{' +compile' if compiled else ''}"
            rates[key] = images_per_s(build(), batch, (3, 32, 32), steps, args.device, compiled, args.compile_backend)
            print(f"[throughput] {key}: {rates[key]:.0f} images/s", flush=True)
    rates["mlp bf16 (batch 64)"] = images_per_s(MLP((1, 28, 28), 10), 64, (1, 28, 28), steps * 5, args.device, False,
                                                args.compile_backend)  # fmt: skip
    tf = {name: transformer_rates(name, args) for name in (["tiny"] if args.smoke else ["iwslt", "wmt"])}
    RESULTS["throughput"] = {"images_per_s": rates, "transformer": tf}


def costs(args) -> None:
    device = torch.device(args.device)
    arch = "resnet20 (3x32x32)" if args.smoke else "resnet110 (3x32x32)"
    shape, size = (3, 32, 32), dict(depth=20, width=0.25) if args.smoke else dict(depth=110)
    build = lambda s: ResNet(s, 10, norm="batch", **size)  # noqa: E731
    torch.manual_seed(0)
    model = build(shape).to(device)
    batch = 16 if args.smoke else 128
    task = gi.FixedBatches(shape, batch, device)
    fns = {"train step": gi.train_step(model, task, device),
           "gradinit objective": gi.ours(model, task, device, 1e30, batch, 1 if args.smoke else 3),
           "gradinit constraint": gi.ours(model, task, device, 1e-30, batch, 1 if args.smoke else 3)}  # fmt: skip
    out = {f"{k} s ({arch})": fn() for k, fn in fns.items()}
    # the emergence init as conf/arch_init sets it up (alpha per architecture; a Xavier base for the Transformer)
    tf_name = "tiny" if args.smoke else "iwslt"
    tokens = tb.random_batch(torch.Generator().manual_seed(0), 1000, 256, 24, args.device)[:2]
    images = (torch.randn(8, *shape, device=device),)
    for name, fresh, base, alpha, example in [
        (arch, lambda: build(shape), Kaiming(), 1.0128, images),
        (f"transformer {tf_name}", lambda: tb.make_model(tf_name, 1000, device), Xavier(), 1.0457, tokens),
    ]:
        m = fresh().to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        init = Emergence(base, alpha=alpha)
        out[f"emergence init s ({name})"] = clock(lambda m=m, g=gen, i=init, e=example: i(m, e, g), device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gi.train_step(model, task, device)()  # gradients, then momentum buffers
    opt.step()
    with tempfile.TemporaryDirectory() as tmp:
        payload = {"model": model.state_dict(), "optimizer": opt.state_dict()}
        out[f"checkpoint s ({arch})"] = clock(lambda: checkpoint.save_atomic(payload, Path(tmp) / "c.pt"), device)
    RESULTS["costs"] = out


def projection(args) -> None:
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


def concurrency(args) -> None:
    steps = 3 if args.smoke else 40
    out = {}
    for k in (1, 2) if args.smoke else (1, 2, 4):
        cmd = [sys.executable, "-m", "scripts.bench.gpu_check", "--worker", str(steps), "--device", args.device]
        cmd += ["--smoke"] if args.smoke else []
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(k)]
        outputs = [p.communicate()[0].strip().splitlines() for p in procs]
        if any(p.returncode for p in procs):
            raise RuntimeError(f"K={k}: a worker failed (exit codes {[p.returncode for p in procs]})")
        rates = [json.loads(lines[-1])["images_per_s"] for lines in outputs]
        out[k] = {"total_images_per_s": sum(rates), "per_run": rates}
        print(f"[concurrency] K={k}: {sum(rates):.0f} images/s in total", flush=True)
    RESULTS["concurrency_resnet20"] = out


def worker(steps: int, device: str, smoke: bool) -> None:
    torch.set_num_threads(1)
    model = ResNet((3, 32, 32), 10, depth=20, norm="batch", width=0.25 if smoke else 1.0)
    rate = images_per_s(model, 16 if smoke else 128, (3, 32, 32), steps, device, False, "")
    print(json.dumps({"images_per_s": rate}))


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
                fn(*((args, args.out) if section == "cli" else (args,)))
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
