"""The translation task (emergence/tasks/translation.py) on tiny synthetic corpora, and through the runner end to end.

The corpora use made-up languages ``xx``/``yy`` so that nothing can rely on German or English.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from emergence.data.translation import BOS, EOS, PAD
from emergence.init.layers import trace_units
from emergence.log import read_metrics
from emergence.metrics.bleu import corpus_bleu
from emergence.models.transformer import Transformer
from emergence.tasks.translation import TranslationTask
from emergence.train import run
from tests.conftest import ROOT, compose_train

SRC_WORDS = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "tu"]
TGT_WORDS = ["Zab", "Yor", "Xim", "Wun", "Vep", "Qal", "Tis", "Suk"]
DING = Path("/usr/share/trans/de-en")
CPU = torch.device("cpu")


def write_corpus(root: Path, n_train: int = 600, n_eval: int = 30, seed: int = 0, reverse: bool = False) -> Path:
    """xx -> yy: 3..8 words, each mapped to its own yy word (and reversed with ``reverse``), plus a final period."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("valid", n_eval), ("test", n_eval)):
        src, tgt = [], []
        for _ in range(n):
            idx = [rng.randrange(len(SRC_WORDS)) for _ in range(rng.randint(3, 8))]
            src.append(" ".join(SRC_WORDS[i] for i in idx) + " .")
            tgt.append(" ".join(TGT_WORDS[i] for i in (idx[::-1] if reverse else idx)) + " .")
        (root / f"{split}.xx").write_text("".join(s + "\n" for s in src), encoding="utf-8")
        (root / f"{split}.yy").write_text("".join(s + "\n" for s in tgt), encoding="utf-8")
    return root


def make_task(corpus: Path, **kw) -> TranslationTask:
    args = dict(vocab_size=100, cache_dir=str(corpus / "cache"), max_tokens=256, beam=3, bleu_every_epochs=1)
    return TranslationTask(str(corpus), "xx", "yy", **{**args, **kw}).setup(CPU)


def tiny_model(task: TranslationTask, layers: int = 1, **kw) -> Transformer:
    torch.manual_seed(0)
    sizes = dict(d_model=32, ffn_dim=64, heads=4, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    return Transformer(**task.model_kwargs(), encoder_layers=layers, decoder_layers=layers, **{**sizes, **kw})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "xx_yy")


@pytest.fixture(scope="module")
def task(corpus) -> TranslationTask:
    return make_task(corpus)


def test_translation_task_api_shapes(task):
    kw = task.model_kwargs()
    assert kw["pad_idx"] == PAD and kw["src_vocab_size"] == kw["tgt_vocab_size"] > len(SRC_WORDS)  # joint vocab
    src, prev = task.example_inputs(5)
    assert src.shape[0] == prev.shape[0] == 5 and (prev[:, 0] == BOS).all()
    assert (src == EOS).sum(1).eq(1).all()  # every source ends with one eos
    probe = task.probe_inputs(7, torch.Generator().manual_seed(0))
    again = task.probe_inputs(7, torch.Generator().manual_seed(0))
    assert probe[0].shape[0] == 7 and all(torch.equal(a, b) for a, b in zip(probe, again))
    logits = tiny_model(task)(*task.inputs(task._collate("train", [0, 1])))
    assert logits.shape[-1] == kw["tgt_vocab_size"]


def test_steps_per_epoch_matches_batches_for_any_seed(task):
    n_train = task.data.size("train")
    for seed in (0, 1, 2):
        batches = list(task.train_batches(999, torch.Generator().manual_seed(seed)))  # batch_size is ignored
        assert len(batches) == task.steps_per_epoch(1) == task.steps_per_epoch(128)
        ids = torch.cat([b["ids"] for b in batches])
        assert sorted(ids.tolist()) == list(range(n_train))  # every pair once per epoch
        assert all(b["target"].numel() <= task.max_tokens for b in batches)
    one = [b["ids"].tolist() for b in task.train_batches(0, torch.Generator().manual_seed(0))]
    other = [b["ids"].tolist() for b in task.train_batches(0, torch.Generator().manual_seed(1))]
    assert one != other
    resumed = [b["ids"].tolist() for b in task.train_batches(0, torch.Generator().manual_seed(0), start=3)]
    assert resumed == one[3:]


def test_loss_is_fairseq_label_smoothed_ce_per_token(task):
    model = tiny_model(task)
    batch = task._collate("train", list(range(12)))
    loss, stats = task.loss(model, batch)
    logits = model(*task.inputs(batch))
    lprobs, target = F.log_softmax(logits, -1), batch["target"]
    mask = target.ne(PAD)
    nll = -lprobs.gather(-1, target[..., None]).squeeze(-1)[mask]
    smooth = -lprobs.sum(-1)[mask]
    eps, vocab = task.label_smoothing, logits.size(-1)
    expected = ((1 - eps - eps / (vocab - 1)) * nll + eps / (vocab - 1) * smooth).sum() / mask.sum()
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["n"] == int(mask.sum()) and 0 <= int(stats["correct"]) <= stats["n"]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_evaluate_writes_translations_and_bleu_matches_files(task, tmp_path):
    model = tiny_model(task)
    task.run_dir = tmp_path
    try:
        out = task.evaluate(model, "test", final=True)
    finally:
        task.run_dir = None
    assert {"loss", "nll", "ppl", "acc", "bleu", "bleu_signature"} <= set(out)
    assert out["ppl"] == pytest.approx(math.exp(out["nll"])) and out["loss"] != out["nll"]  # smoothed vs. plain
    assert "tok:13a" in out["bleu_signature"]
    lines = {k: (tmp_path / f"translations.test.{k}").read_text().split("\n")[:-1] for k in ("src", "hyp", "ref")}
    assert len(lines["src"]) == len(lines["hyp"]) == len(lines["ref"]) == task.data.size("test")
    assert lines["ref"] == task.data.references("test") and lines["src"][0].endswith(" .")
    assert out["bleu"] == pytest.approx(corpus_bleu(lines["hyp"], lines["ref"])["score"])


def test_bleu_only_at_positive_multiples_of_bleu_every_epochs(corpus):
    task = make_task(corpus, bleu_every_epochs=2, bleu_max_sentences=10)
    model = tiny_model(task)
    due = [e for e in (None, 0, 1, 1.5, 2, 3, 4) if "bleu" in task.evaluate(model, "val", epoch=e)]
    assert due == [2, 4]
    assert "bleu" in task.evaluate(model, "val", epoch=1, final=True)


def test_missing_corpus_names_the_folder_the_files_and_the_prepare_commands(tmp_path):
    expected = r"none does not exist.*\{train,valid,test\}\.\{xx,yy\}.*prepare_iwslt14"
    with pytest.raises(FileNotFoundError, match=expected):
        TranslationTask(str(tmp_path / "none"), "xx", "yy").setup(CPU)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty is missing train\.xx, train\.yy, valid\.xx"):
        TranslationTask(str(tmp_path / "empty"), "xx", "yy").setup(CPU)


def test_gradinit_thirds_are_disjoint_and_merge_repads(task):
    model = tiny_model(task).eval()
    parts = next(task.init_batches(200, torch.Generator().manual_seed(3), "thirds"))
    b0, b1, b2 = (p.raw for p in parts)
    sizes = [b["n_sentences"] for b in (b0, b1, b2)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) >= 3
    ids = [set(b["ids"].tolist()) for b in (b0, b1, b2)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    merged = (parts[0] + parts[1]).raw
    assert merged["n_sentences"] == sizes[0] + sizes[1] and merged["ntokens"] == b0["ntokens"] + b1["ntokens"]
    # pads are masked, so the merged loss is the token-weighted mean of the two parts
    with torch.no_grad():
        losses = [float(p.loss(model(*p.inputs))) * p.raw["ntokens"] for p in parts[:2]]
        whole = float(task.criterion(model(*task.inputs(merged)), merged))
    assert whole == pytest.approx(sum(losses) / merged["ntokens"], rel=1e-4)


def test_tiny_transformer_learns_word_mapping_to_bleu_above_90(tmp_path):
    """test_transformer's copy recipe through the task: each xx word has one yy word, order kept."""
    task = make_task(write_corpus(tmp_path / "map", n_train=2000), max_tokens=600, beam=2)
    model = tiny_model(task, d_model=64, ffn_dim=128)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.xavier_uniform_(p)
    steps, step, g = 300, 0, torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30) * (1 - s / steps))
    while step < steps:
        for batch in task.train_batches(None, g):
            loss, _ = task.loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step == steps:
                break
    assert task.evaluate(model, "test", final=True)["bleu"] > 90


def corpus_overrides(tmp_path: Path, corpus: Path) -> list[str]:
    """The ding_de_en data config pointed at a tiny xx->yy corpus written by ``write_corpus``."""
    return [
        "data=ding_de_en",
        f"data.corpus_dir={corpus}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.src_lang=xx",
        "data.tgt_lang=yy",
        "data.vocab_size=100",
    ]


def runner_cfg(tmp_path: Path, corpus: Path, *overrides: str):
    return compose_train(
        [
            *corpus_overrides(tmp_path, corpus),
            "data.max_tokens=512",
            "data.beam=2",
            "arch=transformer_tiny",
            "optim=adam",
            "optim.lr=3e-3",
            "trainer.progress=false",
            "logger=none",
            "diagnostics.every_steps=5",
            "measure.probe_size=16",
            *overrides,
        ],  # fmt: skip
        tmp_path,
    )


@pytest.mark.parametrize("init", ["xavier", "emergence"])
def test_runner_trains_translation_and_logs_bleu(corpus, tmp_path, init):
    record = run(runner_cfg(tmp_path, corpus, f"init={init}", "trainer.epochs=2"))
    assert record["status"] == "completed"
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "completed" and info["summary"]["target_metric"] == "val/bleu"
    history = read_metrics(tmp_path / "run" / "metrics.jsonl")
    bleu = [r for r in history if "val/bleu" in r]
    assert [r["epoch"] for r in bleu] == [1, 2] and all(0 <= r["val/bleu"] <= 100 for r in bleu)
    assert history[-1]["test/bleu"] >= 0 and "tok:13a" in history[-1]["test/bleu_signature"]
    assert any("emergence/log10_E" in r for r in history)  # the measure hooks the FFN ReLUs
    losses = [r["val/loss"] for r in history if "val/loss" in r]
    assert losses[-1] < losses[0]
    assert (tmp_path / "run" / "translations.test.hyp").is_file()
    if init == "emergence":  # the family's base (Xavier for the Transformer), L = 12, factor 2 from max_factor
        assert history[0]["init/base_is_xavier"] == 1.0
        assert info["alpha_max_factor"] == pytest.approx(2.0, abs=1e-3) and history[0]["init/n_units"] == 12


@pytest.mark.parametrize("init", ["torch_default", "xavier", "kaiming", "emergence"])
def test_translation_experiments_compose_for_every_init(tmp_path, init):
    for experiment in ("translation_ding", "iwslt14_paper", "wmt16_paper"):
        cfg = compose_train([f"experiment={experiment}", f"init={init}"], tmp_path)
        assert cfg.data._target_.endswith("TranslationTask") and cfg.arch._target_.endswith("Transformer")
        built = instantiate(cfg.init)
        if init == "emergence":  # the family default, which is Xavier for the Transformer
            assert type(built.base).__name__ == "FamilyDefault" and cfg.arch._target_.endswith("Transformer")


@pytest.mark.parametrize("arch", ["transformer_tiny", "transformer_iwslt_de_en", "transformer_wmt_en_de"])
def test_emergence_alpha_gives_extreme_factor_two(tmp_path, arch):
    cfg = compose_train([f"arch={arch}", "init=emergence", "data=ding_de_en"], tmp_path)
    model = instantiate(cfg.arch, src_vocab_size=16, tgt_vocab_size=16, pad_idx=PAD)
    src = torch.tensor([[5, 6, EOS]])
    n_units = len(trace_units(model, (src, torch.tensor([[BOS, 5, 6]]))))
    assert n_units == {"transformer_tiny": 12, "transformer_iwslt_de_en": 32, "transformer_wmt_en_de": 31}[arch]
    stats = instantiate(cfg.init)(model, (src, torch.tensor([[BOS, 5, 6]])), torch.Generator().manual_seed(0))
    assert stats["n_units"] == n_units and stats["alpha_max_factor"] == pytest.approx(2.0)


@pytest.mark.skipif(not DING.is_file(), reason="no /usr/share/trans/de-en (apt-get install trans-de-en)")
def test_runner_smoke_on_real_ding_corpus(tmp_path):
    corpus = tmp_path / "ding_de_en"
    cmd = [sys.executable, str(ROOT / "scripts/prepare_ding.py"), "--src", "de", "--tgt", "en", "--out", str(corpus)]
    subprocess.run(cmd, check=True, capture_output=True)
    cfg = compose_train(
        [
            "experiment=translation_ding",
            "init=emergence",
            f"data.corpus_dir={corpus}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.max_steps=3",
            "trainer.progress=false",
            "data.test_subset=40",
            "measure.probe_size=32",
            "logger=none",
        ],  # fmt: skip
        tmp_path,
    )
    record = run(cfg)
    assert record["status"] == "completed" and record["steps"] == 3
    history = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert math.isfinite(history[-1]["test/loss"]) and "test/bleu" in history[-1]
    assert len((tmp_path / "run" / "translations.test.ref").read_text().splitlines()) == 40
