"""Machine-translation task: token-count batches, label-smoothed loss, perplexity and sacreBLEU
(docs/method.md#what-the-paper-reports).

The paper's Table 3 trains fairseq's ``transformer_iwslt_de_en`` on IWSLT'14 De-En for 80 epochs and reports BLEU.
This task gives the runner (``emergence/train.py``) the interface of ``ClassificationTask`` for such runs, on any
prepared corpus folder ``{train,valid,test}.{src_lang,tgt_lang}`` (``scripts/prepare_ding.py``, ``prepare_iwslt14.py``,
``prepare_wmt16.py``). Languages are parameters; nothing assumes German or English.

- Batches: fairseq's length-bucketed batches of at most ``max_tokens`` padded tokens
  (``emergence/data/translation.py``); the runner's ``trainer.batch_size`` is ignored. The number of batches depends
  only on the sorted length profile, not on the seed's tie-break or batch order, so ``steps_per_epoch`` is exact for
  every epoch and every seed.
- Loss: fairseq's ``label_smoothed_cross_entropy``, (1 - eps - eps_i) * nll + eps_i * sum_v(-log p_v) with
  eps_i = eps / (V - 1), summed over non-pad target tokens and divided by their number. ``stats["n"]`` counts target
  tokens, so the runner's ``train/acc`` is token accuracy and ``samples_seen`` counts target tokens.
- ``evaluate``: ``loss`` (label-smoothed), ``nll`` (nats per token), ``ppl`` = exp(nll) (the same number as fairseq's
  2 ** nll_base2) and ``acc`` (teacher-forced token accuracy) on every call; ``bleu``, ``bleu_signature``, ``chrf``
  (and ``bleu_tok``, ``best_*``) when ``final`` or when ``epoch`` is a positive whole multiple of
  ``bleu_every_epochs``: search, scoring and the best model are in ``emergence/tasks/translation_bleu.py``.

    task = TranslationTask("data/ding_de_en", "de", "en", vocab_size=4000).setup(torch.device("cpu"))
    model = Transformer(**task.model_kwargs(), d_model=64, ffn_dim=128, heads=4, encoder_layers=2, decoder_layers=2)
"""

from __future__ import annotations

import fcntl
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emergence.data.translation import PAD, TranslationData, corpus_paths
from emergence.init import BATCH_KINDS, InitBatch
from emergence.tasks.translation_bleu import SPLITS, BleuScoring

log = logging.getLogger("emergence")
MODEL_KEYS = ("src_tokens", "prev_output_tokens", "target")  # the batch tensors that go to the device


@contextmanager
def _cache_lock(cache_dir: Path) -> Iterator[None]:
    """Exclusive lock on the cache folder: parallel runs (joblib, SLURM arrays) must not write spm models at once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class TranslationTask(BleuScoring):
    """A parallel corpus as a runner task (see the module docstring)."""

    target_metric = "val/bleu"

    def __init__(
        self,
        corpus_dir: str,
        src_lang: str,
        tgt_lang: str,
        vocab_size: int = 8000,
        joint_vocab: bool = True,
        cache_dir: str | None = None,
        max_tokens: int = 4096,
        max_positions: int | None = 1024,
        label_smoothing: float = 0.1,
        bleu_every_epochs: int = 1,
        beam: int = 5,
        eval_beam: int = 1,
        len_penalty: float = 1.0,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        bleu_max_sentences: int | None = None,
        tokenize: str = "13a",
        lowercase: bool = False,
        train_subset: int | None = None,
        test_subset: int | None = None,
        num_samples: int = 3,
        spm_threads: int = 1,
        keep_best: bool = False,
        tokenized_bleu: bool = False,
    ):
        if src_lang == tgt_lang:
            raise ValueError(f"data.src_lang and data.tgt_lang must differ; both are {src_lang!r}")
        if max_tokens < 1 or not 0 <= label_smoothing < 1 or bleu_every_epochs < 0 or beam < 1 or eval_beam < 1:
            raise ValueError(
                "need data.max_tokens >= 1, 0 <= data.label_smoothing < 1, data.bleu_every_epochs >= 0 (0 = final "
                f"only), data.beam >= 1, data.eval_beam >= 1; got {max_tokens}, {label_smoothing}, "
                f"{bleu_every_epochs}, {beam}, {eval_beam}"
            )
        self.keep_best, self.tokenized_bleu = bool(keep_best), bool(tokenized_bleu)
        self.corpus_dir, self.src_lang, self.tgt_lang = Path(corpus_dir), src_lang, tgt_lang
        self.vocab_size, self.joint_vocab, self.spm_threads = int(vocab_size), bool(joint_vocab), int(spm_threads)
        self.cache_dir = Path(cache_dir) if cache_dir else self.corpus_dir / "cache"
        self.max_tokens, self.max_positions = int(max_tokens), max_positions
        self.label_smoothing, self.bleu_every_epochs = float(label_smoothing), int(bleu_every_epochs)
        self.beam, self.eval_beam, self.len_penalty = int(beam), int(eval_beam), float(len_penalty)
        self.max_len_a, self.max_len_b = float(max_len_a), int(max_len_b)
        self.bleu_max_sentences, self.tokenize, self.lowercase = bleu_max_sentences, tokenize, bool(lowercase)
        self.train_subset, self.test_subset, self.num_samples = train_subset, test_subset, int(num_samples)
        self.run_dir: Path | None = None  # set by the runner; final translations are written there

    # ---- data ---------------------------------------------------------------------------------------------------
    def setup(self, device: torch.device) -> TranslationTask:
        corpus_paths(self.corpus_dir, self.src_lang, self.tgt_lang)  # names the folder, the files and how to prepare
        with _cache_lock(self.cache_dir):
            self.data = TranslationData.from_corpus(
                self.corpus_dir,
                self.src_lang,
                self.tgt_lang,
                self.vocab_size,
                self.joint_vocab,
                self.cache_dir,
                max_positions=self.max_positions,
                threads=self.spm_threads,
            )
        # Subsets (CPU profiles, debug=smoke) restrict the pairs the data object serves.
        for split, n in (("train", self.train_subset), ("test", self.test_subset)):
            if n is not None:
                self.data.restrict(split, n)
        self.device = device
        self.info = self.data.summary()
        self._steps = len(self.data.batch_indices("train", self.max_tokens, shuffle=False))
        if self._steps < 1:
            raise ValueError(f"{self.corpus_dir}: no training pairs left (train_subset={self.train_subset})")
        log.info("translation data %s %s-%s: %s", self.corpus_dir, self.src_lang, self.tgt_lang, self.info)
        return self

    def model_kwargs(self) -> dict:
        """What the architecture needs to know about the data."""
        return {
            "src_vocab_size": self.data.vocab_size("src"),
            "tgt_vocab_size": self.data.vocab_size("tgt"),
            "pad_idx": PAD,
        }

    def _ids(self, split: str) -> Tensor:
        return self.data.ids(SPLITS[split])

    def _lengths(self, split: str, ids: Tensor) -> Tensor:
        """(source, target) lengths with eos of sentences ``ids`` (the data object's length table)."""
        return self.data.lengths(SPLITS[split], ids)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if k in MODEL_KEYS else v for k, v in batch.items()}

    def _collate(self, split: str, ids) -> dict:
        return self._to_device(self.data.collate(SPLITS[split], [int(i) for i in ids]))

    def example_inputs(self, n: int = 8) -> tuple:
        return self.inputs(self._collate("train", self._ids("train")[:n]))

    def probe_inputs(self, n: int, generator: torch.Generator) -> tuple:
        """A fixed, seeded probe batch of validation pairs (the emergence measure hooks the FFN ReLUs)."""
        ids = self._ids("val")
        pick = torch.randperm(len(ids), generator=generator)[:n].sort().values
        return self.inputs(self._collate("val", ids[pick]))

    def steps_per_epoch(self, batch_size: int | None = None) -> int:
        """Token batches per epoch (``batch_size`` is ignored: ``max_tokens`` sets the batch)."""
        return self._steps

    def train_batches(self, batch_size: int | None, generator: torch.Generator, start: int = 0) -> Iterator[dict]:
        """One epoch of shuffled token batches (``batch_size`` ignored), starting at batch ``start``."""
        for ids in self.data.batch_indices("train", self.max_tokens, generator)[start:]:
            yield self._collate("train", ids)

    def _window(self, budget: int, generator: torch.Generator) -> Tensor:
        """Ids of a random length-bucketed batch of about ``budget`` padded tokens (at least 3 sentences): a window of
        neighbours in the length order (random tie-break) around a random sentence, as training batches are (little
        padding)."""
        ids = self._ids("train")
        ids = ids[torch.randperm(len(ids), generator=generator)]
        tok = self._lengths("train", ids).max(1).values
        order = torch.sort(tok, stable=True).indices
        ids, tok = ids[order].tolist(), tok[order].tolist()
        lo = int(torch.randint(len(ids), (1,), generator=generator))
        hi, width = lo + 1, tok[lo]
        while True:  # grow upwards, then downwards, while (longest length) x (sentences) fits the budget
            if hi < len(ids) and (max(width, tok[hi]) * (hi - lo + 1) <= budget or hi - lo < 3):
                width, hi = max(width, tok[hi]), hi + 1
            elif lo > 0 and (max(width, tok[lo - 1]) * (hi - lo + 1) <= budget or hi - lo < 3):
                width, lo = max(width, tok[lo - 1]), lo - 1
            else:
                break
        return torch.tensor(ids[lo:hi])[torch.randperm(hi - lo, generator=generator)]

    def init_batches(self, batch_size: int, generator: torch.Generator, kind: str = "batch") -> Iterator:
        """Endless random batches of about ``batch_size`` padded tokens for data-dependent initializers, drawn with
        ``generator`` when asked for: an ``InitBatch`` each, or (``kind="thirds"``) (B0, B1, B2), one such batch cut
        into thirds by sentence count (docs/gradinit.md#batches)."""
        if kind not in BATCH_KINDS:
            raise ValueError(f"init batch kind must be one of {list(BATCH_KINDS)}; got {kind!r}")
        while True:
            chosen = self._window(batch_size, generator)
            if kind == "thirds" and len(chosen) < 3:
                raise ValueError(f"GradInit needs >= 3 training pairs in a batch; the corpus has {len(chosen)}")
            parts = [chosen] if kind == "batch" else chosen.tensor_split(3)
            out = tuple(InitBatch(self._collate("train", i), self.inputs, self.criterion, self.merge) for i in parts)
            yield out[0] if kind == "batch" else out

    @staticmethod
    def merge(a: dict, b: dict) -> dict:
        """One batch made of two (S = B0 + B1 in GradInit), re-padded to the wider of the two."""
        out = {}
        for key in a:
            if isinstance(a[key], int):
                out[key] = a[key] + b[key]
            elif a[key].dim() == 2:
                width = max(a[key].size(1), b[key].size(1))
                out[key] = torch.cat([F.pad(t, (0, width - t.size(1)), value=PAD) for t in (a[key], b[key])])
            else:
                out[key] = torch.cat([a[key], b[key]])
        return out

    # ---- loss and evaluation ------------------------------------------------------------------------------------
    @staticmethod
    def inputs(batch: dict) -> tuple:
        """Positional model inputs of a batch (``model(*task.inputs(batch))``)."""
        return batch["src_tokens"], batch["prev_output_tokens"]

    def _token_losses(self, logits: Tensor, target: Tensor, smoothing: float) -> Tensor:
        """Summed loss over non-pad target tokens. fairseq's eps_i = eps / (V - 1) equals PyTorch's label smoothing
        eps' / V with eps' = eps * V / (V - 1), so the fused cross_entropy computes fairseq's loss exactly."""
        vocab = logits.size(-1)
        return F.cross_entropy(
            logits.flatten(0, -2).float(),
            target.flatten(),
            ignore_index=PAD,
            reduction="sum",
            label_smoothing=smoothing * vocab / (vocab - 1),
        )

    def criterion(self, logits: Tensor, batch: dict) -> Tensor:
        """Label-smoothed cross-entropy averaged over non-pad target tokens (fairseq's normalization)."""
        target = batch["target"]
        return self._token_losses(logits, target, self.label_smoothing) / target.ne(PAD).sum()

    def loss(self, model: nn.Module, batch: dict) -> tuple[Tensor, dict]:
        logits = model(*self.inputs(batch))
        target = batch["target"]
        correct = (logits.argmax(-1).eq(target) & target.ne(PAD)).sum()
        return self.criterion(logits, batch), {"correct": correct, "n": batch["ntokens"]}

    def _chunks(self, split: str, ids: Tensor, budget: int, by_source: bool) -> list[list[int]]:
        """Positions into ``ids`` grouped by length, each group's (longest length) x (sentences) within ``budget``."""
        lens = self._lengths(split, ids)
        lens = lens[:, 0] if by_source else lens.max(1).values
        order = torch.sort(lens, stable=True).indices.tolist()
        chunks, current, width = [], [], 0
        for pos in order:
            n = int(lens[pos])
            if current and max(width, n) * (len(current) + 1) > budget:
                chunks.append(current)
                current, width = [], 0
            current.append(pos)
            width = max(width, n)
        return chunks + [current] if current else chunks

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, epoch: float | None = None, final: bool = False) -> dict:
        """Teacher-forced loss/nll/ppl/acc on ``split``; BLEU when ``final`` or at every ``bleu_every_epochs``."""
        ids = self._ids(split)
        if len(ids) == 0:
            return {}
        was_training = model.training
        model.eval()
        smoothed = nll = 0.0
        correct = ntokens = 0
        for chunk in self._chunks(split, ids, self.max_tokens, by_source=False):
            batch = self._collate(split, ids[chunk])
            logits, target = model(*self.inputs(batch)), batch["target"]
            smoothed += float(self._token_losses(logits, target, self.label_smoothing))
            nll += float(self._token_losses(logits, target, 0.0))
            correct += int((logits.argmax(-1).eq(target) & target.ne(PAD)).sum())
            ntokens += batch["ntokens"]
        out = {
            "loss": smoothed / ntokens,
            "nll": nll / ntokens,
            "ppl": math.exp(min(nll / ntokens, 700.0)),
            "acc": correct / ntokens,
        }
        if final or self._bleu_due(epoch):
            if not final and self.bleu_max_sentences is not None and self.bleu_max_sentences < len(ids):
                fixed = torch.Generator().manual_seed(0)  # the same subset for every run, seed and epoch
                ids = ids[torch.randperm(len(ids), generator=fixed)[: self.bleu_max_sentences].sort().values]
            out.update(self._bleu(model, split, ids, self.beam if final else self.eval_beam, write=final))
            if split == "val" and not final and self.keep_best:
                self._keep_if_best(model, float(epoch), out["bleu"])
            if final and self.keep_best:
                out.update(self._score_best(model, split, ids))
        model.train(was_training)
        return out
