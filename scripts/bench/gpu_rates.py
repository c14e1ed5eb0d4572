"""Sections 2, 3 and 5 of the GPU check (scripts/bench/gpu_check.py): training throughput (images/s, Transformer
tokens/s and model FLOP utilisation), the costs of GradInit, the emergence init and a checkpoint, and K concurrent
ResNet-20 runs on one device. Each section returns its figures as ``{section name: figures}``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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
from scripts.bench.timing import ROOT, clock


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


def throughput(args) -> dict:
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
    return {"throughput": {"images_per_s": rates, "transformer": tf}}


def costs(args) -> dict:
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
    return {"costs": out}


def concurrency(args) -> dict:
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
    return {"concurrency_resnet20": out}


def worker(steps: int, device: str, smoke: bool) -> None:
    torch.set_num_threads(1)
    model = ResNet((3, 32, 32), 10, depth=20, norm="batch", width=0.25 if smoke else 1.0)
    rate = images_per_s(model, 16 if smoke else 128, (3, 32, 32), steps, device, False, "")
    print(json.dumps({"images_per_s": rate}))
