"""Section 1 of the GPU check (scripts/bench/gpu_check.py): every family through the real CLI on the device, then the
same kaiming runs on the CPU and on the device (fp32) must agree on their final train and val loss within ``--tol``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emergence import rundirs
from scripts.bench.timing import ROOT
from scripts.bench.translation import synthetic_corpus

INITS = ["torch_default", "xavier", "kaiming", "emergence"]  # + gradinit, run separately (it takes init.iterations)


def cli(out: Path, device: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMERGENCE_RUNS": str(out / "runs"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "emergence.train", "-m", "debug=smoke", f"trainer.device={device}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def run_records(out: Path, name: str) -> list[dict]:
    """The run.json records of sweep ``name``, each with its ``dir``; an unreadable one counts as not completed."""
    corrupt = {"status": "corrupt", "labels": {"name": "?"}}
    return [(record or corrupt) | {"dir": d} for d, record, _ in rundirs.run_records(out / "runs" / name)]


def final_losses(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if "train/loss" in r][-1]
    return {k: last[k] for k in ("train/loss", "val/loss")}


def cli_smoke(args, out: Path) -> dict:
    """Section 1 of scripts/bench/gpu_check.py: every family through the CLI, then CPU-vs-device agreement."""
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
    return {"cli_smoke": smoke, "agreement": {"tolerance": args.tol, "runs": agree}}
