"""Training throughput of the translation runner against a bare PyTorch loop (same model, same token batches).

1. Bare loop: the batches of ``TranslationTask.train_batches`` collated beforehand, then forward, fairseq's
   label-smoothed cross-entropy (``F.cross_entropy`` with eps * V / (V - 1)), backward, AdamW step. Nothing else.
2. Runner: ``emergence.train.run`` with ``experiment=translation_ding`` (collation on the fly, token accuracy,
   divergence check, schedule, logging), the emergence measure and per-layer diagnostics off, ``trainer.max_steps``
   steps.
   Its ``time/wall_s`` counts training steps only, so evaluation is excluded.
Both report target (non-pad) tokens per second; the ratio runner / bare is the runner's overhead.

    python scripts/bench_translation.py [--corpus data/ding_de_en] [--steps 40] [--repeats 2] [--arch transformer_tiny]

Without a corpus at ``--corpus`` (``make data`` builds the Ding one) a synthetic 3000-pair corpus is written to a
temporary folder.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from emergence.data.translation import PAD  # noqa: E402
from emergence.init.xavier import Xavier  # noqa: E402
from emergence.train import run  # noqa: E402


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
            "logger=none", f"paths.root={tmp}",
        ])  # fmt: skip
    with open_dict(cfg):
        cfg.run_dir = run_dir
    return cfg


def bare_loop(cfg, steps: int) -> float:
    """Target tokens per second of a plain loop over pre-collated batches."""
    task = instantiate(cfg.data).setup(torch.device("cpu"))
    torch.manual_seed(0)
    model = instantiate(cfg.arch, **task.model_kwargs())
    Xavier()(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=1e-4)
    batches = []
    generator = torch.Generator().manual_seed(0)
    while len(batches) < steps:
        batches += list(task.train_batches(None, generator))
    batches = batches[:steps]
    vocab = task.model_kwargs()["tgt_vocab_size"]
    eps = cfg.data.label_smoothing * vocab / (vocab - 1)
    model.train()
    t0 = time.perf_counter()
    for b in batches:
        logits = model(b["src_tokens"], b["prev_output_tokens"])
        loss = (
            F.cross_entropy(
                logits.flatten(0, 1), b["target"].flatten(), ignore_index=PAD, label_smoothing=eps, reduction="sum"
            )
            / b["ntokens"]
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return sum(b["ntokens"] for b in batches) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "ding_de_en")
    ap.add_argument("--langs", nargs=2, default=["de", "en"])
    ap.add_argument("--arch", default="transformer_tiny")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus, langs, name = args.corpus, tuple(args.langs), args.corpus.name
        if not (corpus / f"train.{langs[0]}").is_file():
            print(f"no corpus at {corpus}; using a synthetic xx-yy corpus")
            corpus, langs, name = synthetic_corpus(tmp), ("xx", "yy"), "a synthetic corpus"
        rates = {"bare loop": [], "runner": []}
        for i in range(args.repeats):  # interleaved, so machine noise hits both alike
            rates["bare loop"].append(bare_loop(config(corpus, langs, tmp, args.arch, args.steps, ""), args.steps))
            record = run(config(corpus, langs, tmp, args.arch, args.steps, str(tmp / f"run{i}")))
            rates["runner"].append(record["samples_seen"] / record["wall_s"])
        bare, runner = statistics.median(rates["bare loop"]), statistics.median(rates["runner"])
        print(
            f"{args.arch} on {name} ({langs[0]}-{langs[1]}), max_tokens from the data config, {args.steps} "
            f"steps, {args.repeats} interleaved repeats, 1 thread"
        )
        print(f"bare loop  {bare:9.0f} target tokens/s")
        print(f"runner     {runner:9.0f} target tokens/s   runner / bare = {runner / bare:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
