"""Training throughput of the translation runner against a bare PyTorch loop (same model, same token batches).

1. Bare loop: the batches of ``TranslationTask.train_batches`` (collated on the fly, as the runner gets them), then
   forward, fairseq's label-smoothed cross-entropy (``F.cross_entropy`` with eps * V / (V - 1)), backward, AdamW step.
2. Runner: ``emergence.train.run`` with ``experiment=translation_ding`` (token accuracy, divergence check, schedule,
   logging), the emergence measure and per-layer diagnostics off, ``trainer.max_steps`` steps.
Both are timed the same way from outside: the batch generator stamps each batch as it is handed out, and tokens/s =
target tokens of all batches but the last / (last stamp - first stamp), so setup and evaluations are excluded.
Interleaved repeats, medians; the ratio runner / bare is the runner's overhead.

    python -m scripts.bench.translation [--corpus data/ding_de_en] [--steps 40] [--repeats 3]
    python -m scripts.bench.translation --smoke

Without a corpus at ``--corpus`` (``make data`` builds the Ding one) a synthetic 3000-pair corpus is written to a
temporary folder.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from emergence import seeding
from emergence.data.translation import PAD
from emergence.init.xavier import Xavier
from emergence.tasks.translation import TranslationTask
from emergence.train import run
from scripts.bench.timing import ROOT, Report, common_args, interleave, setup

STAMPS: list[tuple[float, int]] = []
_train_batches = TranslationTask.train_batches


def _stamped(self, *args, **kwargs):
    """``train_batches`` that records when each batch is handed to the loop, and its target tokens."""
    for batch in _train_batches(self, *args, **kwargs):
        STAMPS.append((time.perf_counter(), int(batch["ntokens"])))
        yield batch


TranslationTask.train_batches = _stamped  # this benchmark process only


def tokens_per_s() -> float:
    if len(STAMPS) < 2:
        raise RuntimeError("fewer than 2 batches were drawn; raise --steps")
    return sum(n for _, n in STAMPS[:-1]) / (STAMPS[-1][0] - STAMPS[0][0])


def synthetic_corpus(root: Path, n_train: int = 3000, seed: int = 0) -> Path:
    """Made-up ``xx``/``yy`` pairs of 4..20 words from a 300-word lexicon (word-for-word, order reversed)."""
    rng = random.Random(seed)
    lexicon = [
        ("".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3)), f"w{i}") for i in range(300)
    ]
    for split, n in (("train", n_train), ("valid", 100), ("test", 100)):
        pairs = [[lexicon[rng.randrange(300)] for _ in range(rng.randint(4, 20))] for _ in range(n)]
        (root / f"{split}.xx").write_text("".join(" ".join(a for a, _ in p) + "\n" for p in pairs))
        (root / f"{split}.yy").write_text("".join(" ".join(b for _, b in p[::-1]) + "\n" for p in pairs))
    return root


def config(corpus: Path, langs: tuple[str, str], tmp: Path, arch: str, steps: int, run_dir: str):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=translation_ding", f"arch={arch}", "init=xavier", f"data.corpus_dir={corpus}",
            f"data.src_lang={langs[0]}", f"data.tgt_lang={langs[1]}", f"data.cache_dir={tmp}/cache",
            "data.bleu_every_epochs=0", "data.test_subset=20", "measure.enabled=false", "diagnostics.every_steps=0",
            "trainer.epochs=1", f"trainer.max_steps={steps}", "trainer.progress=false", "trainer.device=cpu",
            "trainer.cpu_threads=null", "trainer.checkpoint_minutes=null",
            "logger=none", f"paths.root={tmp}",
        ])  # fmt: skip
    with open_dict(cfg):
        cfg.run_dir = run_dir
    return cfg


def bare_loop(cfg, task, steps: int) -> float:
    """Target tokens per second of a plain loop over the task's batches."""
    torch.manual_seed(0)
    model = instantiate(cfg.arch, **task.model_kwargs())
    Xavier()(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=1e-4)
    vocab = task.model_kwargs()["tgt_vocab_size"]
    eps = cfg.data.label_smoothing * vocab / (vocab - 1)
    model.train()
    STAMPS.clear()
    for step, b in enumerate(task.train_batches(None, seeding.generator(0, "data"))):
        logits = model(b["src_tokens"], b["prev_output_tokens"])
        loss = F.cross_entropy(
            logits.flatten(0, 1), b["target"].flatten(), ignore_index=PAD, label_smoothing=eps, reduction="sum"
        ) / b["ntokens"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step + 1 >= steps:
            break
    return tokens_per_s()


def runner(corpus, langs, tmp: Path, arch: str, steps: int) -> float:
    STAMPS.clear()
    record = run(config(corpus, langs, tmp, arch, steps, tempfile.mkdtemp(dir=tmp)))
    assert record["status"] == "completed" and record["steps"] == steps, record.get("status")
    return tokens_per_s()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "ding_de_en")
    ap.add_argument("--langs", nargs=2, default=["de", "en"])
    ap.add_argument("--arch", default="transformer_tiny")
    ap.add_argument("--steps", type=int, default=40)
    common_args(ap, repeats=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.corpus = 3, Path("/nonexistent")
    setup(args)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus, langs, name = args.corpus, tuple(args.langs), args.corpus.name
        if not (corpus / f"train.{langs[0]}").is_file():
            print(f"no corpus at {corpus}; using a synthetic xx-yy corpus")
            corpus, langs, name = synthetic_corpus(tmp), ("xx", "yy"), "a synthetic corpus"
        cfg = config(corpus, langs, tmp, args.arch, args.steps, "")
        task = instantiate(cfg.data).setup(torch.device("cpu"))
        if task.steps_per_epoch() < args.steps:  # one epoch only: a second one would put an evaluation in the timing
            print(f"{name} has {task.steps_per_epoch()} batches per epoch; timing that many steps, not {args.steps}")
            args.steps = task.steps_per_epoch()
            cfg = config(corpus, langs, tmp, args.arch, args.steps, "")
        stats = interleave(
            {"bare loop": lambda: bare_loop(cfg, task, args.steps),
             "runner": lambda: runner(corpus, langs, tmp, args.arch, args.steps)},
            args.repeats,
            warmup=0 if args.smoke else 1,
        )  # fmt: skip
    report = Report(
        "Translation runner vs bare loop (target tokens/s)",
        ["loop", "tokens/s (median)", "vs bare", "spread"],
        setting=f"{args.arch} on {name} ({langs[0]}-{langs[1]}), max_tokens from the data config, {args.steps} steps, "
        f"{args.repeats} interleaved repeats",
    )
    bare = stats["bare loop"].median
    for loop_name, s in stats.items():
        report.add(loop_name, f"{s.median:.0f}", f"{s.median / bare:.3f}", f"{100 * s.spread:.0f} %")
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
