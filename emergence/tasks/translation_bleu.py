"""The search-and-score half of `emergence.tasks.translation.TranslationTask`: translations, BLEU, the best model.

``BleuScoring`` is a mixin: ``TranslationTask`` provides the data (``self.data``, ``self._ids``, ``self._chunks``,
``self._collate``) and the settings (``beam``, ``len_penalty``, ``max_len_a``, ``max_len_b``, ``tokenize``,
``lowercase``, ``tokenized_bleu``, ``num_samples``, ``bleu_every_epochs``, ``run_dir``); this module turns a model into
detokenized translations (greedy or beam search, emergence/models/decode.py), scores them with sacreBLEU and chrF
(emergence/metrics/bleu.py), writes ``translations.<split>{,.best}.{src,hyp,ref}`` into the run dir, and keeps the
model with the best periodic val BLEU in ``run_dir/best_model.pt``.

When: ``TranslationTask.evaluate`` adds ``bleu`` and ``bleu_signature`` when ``final`` (search with ``beam`` on the
whole split; ``translations.<split>.{src,hyp,ref}`` written into ``run_dir``) or when ``epoch`` is a positive whole
multiple of ``bleu_every_epochs`` (search with ``eval_beam``, 1 = greedy, on a fixed subset of at most
``bleu_max_sentences`` sentences). BLEU is sacreBLEU (signature logged) on the spm-decoded hypotheses against the
corpus's own reference lines, and ``chrf`` beside it; on a pre-tokenized corpus (IWSLT'14: lowercased,
Moses-tokenized) ``tokenized_bleu`` adds ``bleu_tok``, the papers' tokenized BLEU. ``keep_best`` stores the model with
the best periodic val BLEU (``run_dir/best_model.pt``) and the final test evaluation scores it too (``best_bleu``,
``best_bleu_tok``, ``best_chrf``, ``best_epoch``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from emergence.metrics.bleu import corpus_bleu, corpus_chrf, tokenized_bleu, write_translations
from emergence.models.decode import beam_search, greedy_decode

log = logging.getLogger("emergence")
SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}  # runner name -> corpus file name


def _raw_lines(path: Path) -> list[str]:
    # Split on "\n" only, as the corpus reader does (str.splitlines would also break at U+2028).
    text = path.read_text(encoding="utf-8")
    return text.removesuffix("\n").split("\n") if text else []


class BleuScoring:
    """Search, BLEU and best-model methods of ``TranslationTask`` (see the module docstring)."""

    def _bleu_due(self, epoch: float | None) -> bool:
        if epoch is None or epoch <= 0 or self.bleu_every_epochs == 0 or abs(epoch - round(epoch)) > 1e-9:
            return False
        return round(epoch) % self.bleu_every_epochs == 0

    def _best_path(self) -> Path | None:
        return Path(self.run_dir) / "best_model.pt" if getattr(self, "run_dir", None) is not None else None

    def _keep_if_best(self, model: nn.Module, epoch: float, bleu: float) -> None:
        """Store the model when its val BLEU is the best so far (a file from an earlier attempt, written at this
        epoch or later, is replaced), atomically in the run dir so that a resumed run keeps its best."""
        path = self._best_path()
        if path is None:
            return
        best = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None
        if best is None or best["epoch"] >= epoch or bleu > best["val_bleu"]:
            tmp = path.with_name(path.name + ".tmp")
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            torch.save({"epoch": epoch, "val_bleu": bleu, "model": state}, tmp)
            os.replace(tmp, path)

    def _score_best(self, model: nn.Module, split: str, ids: Tensor) -> dict:
        """BLEU of the best checkpoint by val BLEU on ``split`` (the final model's weights are restored after)."""
        path = self._best_path()
        if path is None or not path.exists():
            return {}
        best = torch.load(path, map_location="cpu", weights_only=True)
        final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best["model"])
        scores = self._bleu(model, split, ids, self.beam, write=True, tag=".best")
        model.load_state_dict(final_state)
        scores = {f"best_{k}": v for k, v in scores.items()}
        return {**scores, "best_epoch": best["epoch"], "best_val_bleu": best["val_bleu"]}

    def translate(self, model: nn.Module, split: str, ids: Tensor, beam: int) -> list[str]:
        """Detokenized translations of sentences ``ids`` of ``split`` (greedy for beam 1), in the order of ``ids``."""
        hyps: list[str] = [""] * len(ids)
        for chunk in self._chunks(split, ids, max(1, self.max_tokens // beam), by_source=True):
            src = self._collate(split, ids[chunk])["src_tokens"]
            search = dict(max_len_a=self.max_len_a, max_len_b=self.max_len_b)
            if beam == 1:
                out = greedy_decode(model, src, **search)
            else:
                out = beam_search(model, src, beam=beam, len_penalty=self.len_penalty, **search)
            for pos, tokens in zip(chunk, out):
                hyps[pos] = self.data.decode(tokens, "tgt")
        return hyps

    def _bleu(self, model: nn.Module, split: str, ids: Tensor, beam: int, write: bool, tag: str = "") -> dict:
        name = SPLITS[split]
        refs_all = self.data.references(name)
        refs = [refs_all[i] for i in ids.tolist()]
        hyps = self.translate(model, split, ids, beam)
        score = corpus_bleu(hyps, refs, tokenize=self.tokenize, lowercase=self.lowercase)
        if write:
            srcs_all = _raw_lines(self.corpus_dir / f"{name}.{self.src_lang}")
            srcs = [srcs_all[i] for i in ids.tolist()]
            if self.run_dir is not None:
                write_translations(Path(self.run_dir) / f"translations.{split}{tag}", srcs, hyps, refs)
            for i in range(min(self.num_samples, len(hyps))):
                log.info("%s sample %d\n  src: %s\n  ref: %s\n  hyp: %s", split, i, srcs[i], refs[i], hyps[i])
        log.info("%s BLEU %.2f (beam %d, %d sentences) %s", split, score["score"], beam, len(ids), score["signature"])
        out = {"bleu": score["score"], "bleu_signature": score["signature"], "chrf": corpus_chrf(hyps, refs)["score"]}
        if self.tokenized_bleu:  # the papers' number on a pre-tokenized corpus (emergence/metrics/bleu.py)
            tok = tokenized_bleu(hyps, refs)
            out.update(bleu_tok=tok["score"], bleu_tok_signature=tok["signature"])
        return out
