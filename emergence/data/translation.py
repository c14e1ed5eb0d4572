"""Translation data: sentencepiece vocabularies, cached token ids and fairseq-style token-count batches.

Used for the paper's IWSLT'14 De-En Transformer experiment (docs/method.md#training-recipes) and its offline
stand-in, the Ding corpus (docs/environment.md#data-sources). A prepared corpus is a folder of aligned plain-text files
``{train,valid,test}.{lang}``, one sentence per line, written by ``scripts/prepare_ding.py``, ``prepare_iwslt14.py``
or ``prepare_wmt16.py``. Languages are parameters everywhere; nothing assumes German or English.

Conventions shared with ``emergence.models.transformer`` and ``emergence.models.decode``: ids pad = 0, bos = 1, eos = 2,
unk = 3. ``src_tokens`` = pieces + eos, ``target`` = pieces + eos, ``prev_output_tokens`` = bos + pieces, all right-
padded with pad. Batching follows fairseq: sort by (source length, target length) with a random tie-break, fill each
batch while max(length) * n_sentences <= max_tokens (length = max(src, tgt) including eos), then shuffle batch order.

    data = TranslationData.from_corpus("data/ding_de_en", "de", "en", vocab_size=8000, joint=True, cache_dir="cache")
    for batch in data.batches("train", max_tokens=4096, generator=torch.Generator().manual_seed(0)):
        logits = model(batch["src_tokens"], batch["prev_output_tokens"])

Reading the corpus and caching are in ``emergence/data/corpus.py``: the spm models are cached in ``cache_dir`` next
to a JSON file holding a hash of (training files, trainer args); encoded splits are cached as
``encoded.<src>-<tgt>.<tokenizer>.<hash>.pt`` keyed by the spm model files and corpus files; a new encoding replaces
the older ones of the same pair and tokenizer. Use one cache folder per corpus.
``identity`` is a hash of the corpus files and the tokenizer model(s): the runner makes it part of a run's identity.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm
import torch
from torch import Tensor

from emergence.data.corpus import (  # noqa: F401  (BOS, UNK, encode_corpus, train_sentencepiece: re-exported)
    BOS,
    EOS,
    PAD,
    SPLITS,
    UNK,
    _digest,
    _read_lines,
    _sha256,
    corpus_paths,
    encode_corpus,
    train_sentencepiece,
)


class TranslationData:
    """Encoded parallel splits with token-count batching and spm decoding.

    Args:
        encoded: output of ``encode_corpus``.
        src_lang: source language code.
        tgt_lang: target language code.
        models: ``{lang: spm model path}`` from ``train_sentencepiece``.
        max_positions: drop training pairs whose source or target (with eos/bos) is longer; valid/test are kept
            whole so scores cover every sentence. The number dropped is ``n_filtered``.
        corpus_dir: the corpus folder, for ``references``.
    """

    pad, bos, eos, unk = PAD, BOS, EOS, UNK

    def __init__(self, encoded: dict[str, dict[str, Tensor]], src_lang: str, tgt_lang: str, models: dict[str, Path],
                 max_positions: int | None = None, corpus_dir: str | Path | None = None) -> None:
        self.src_lang, self.tgt_lang, self.max_positions = src_lang, tgt_lang, max_positions
        self.models = {lang: Path(models[lang]) for lang in (src_lang, tgt_lang)}
        self.corpus_dir = None if corpus_dir is None else Path(corpus_dir)
        self.identity: str | None = None  # set by from_corpus
        self._sp = {lang: spm.SentencePieceProcessor(model_file=str(p)) for lang, p in self.models.items()}
        self._data, self._lens, self._kept, self.n_filtered = {}, {}, {}, 0
        for split in SPLITS:
            src, tgt = encoded[f"{split}.{src_lang}"], encoded[f"{split}.{tgt_lang}"]
            lens = torch.stack([src["offsets"].diff(), tgt["offsets"].diff()], 1) + 1  # + eos (or bos)
            kept = torch.arange(len(lens))
            if split == "train" and max_positions is not None:
                kept = kept[lens.max(1).values <= max_positions]
                self.n_filtered = len(lens) - len(kept)
            self._data[split], self._lens[split], self._kept[split] = (src, tgt), lens, kept

    @classmethod
    def from_corpus(cls, corpus_dir: str | Path, src_lang: str, tgt_lang: str, vocab_size: int, joint: bool,
                    cache_dir: str | Path, max_positions: int | None = None, seed: int = 0, threads: int = 1,
                    model_type: str = "bpe") -> TranslationData:
        """Corpus folder → trained/cached spm model(s) → cached ids → ``TranslationData``, in one call."""
        corpus_paths(corpus_dir, src_lang, tgt_lang)  # fail early with the prepare hint
        models = train_sentencepiece(corpus_dir, src_lang, tgt_lang, vocab_size, joint, cache_dir, seed=seed,
                                     threads=threads, model_type=model_type)
        encoded = encode_corpus(corpus_dir, src_lang, tgt_lang, models, cache_dir)
        data = cls(encoded, src_lang, tgt_lang, models, max_positions=max_positions, corpus_dir=corpus_dir)
        files = corpus_paths(corpus_dir, src_lang, tgt_lang)
        data.identity = _digest({"files": {f"{s}.{lang}": _sha256(p) for s, langs in files.items()
                                           for lang, p in langs.items()},
                                 "models": {lang: _sha256(p) for lang, p in data.models.items()}})[:16]
        return data

    def _lang(self, side: str) -> str:
        if side in ("src", self.src_lang):
            return self.src_lang
        if side in ("tgt", self.tgt_lang):
            return self.tgt_lang
        raise ValueError(f"side must be 'src', 'tgt', {self.src_lang!r} or {self.tgt_lang!r}, got {side!r}")

    def vocab_size(self, side: str) -> int:
        """Vocabulary size of the ``side`` ('src', 'tgt' or a language code) model, specials included."""
        return self._sp[self._lang(side)].get_piece_size()

    def size(self, split: str) -> int:
        """Number of pairs served by ``batches`` (after the max_positions filter for train)."""
        return len(self._kept[split])

    def ids(self, split: str) -> Tensor:
        """Ids of the pairs ``batches`` serves from ``split``."""
        return self._kept[split]

    def lengths(self, split: str, ids: Tensor) -> Tensor:
        """(source, target) lengths, eos included, of the pairs ``ids`` of ``split``."""
        return self._lens[split][ids]

    def restrict(self, split: str, n: int, seed: int = 0) -> None:
        """Serve only ``n`` pairs of ``split``, drawn with a seeded shuffle (a corpus stored in document order is not
        cut to its beginning), kept in file order; the same ``seed`` gives the same subset for every run."""
        kept = self._kept[split]
        pick = torch.randperm(len(kept), generator=torch.Generator().manual_seed(seed))[: int(n)]
        self._kept[split] = kept[pick.sort().values]

    def pair(self, split: str, i: int) -> tuple[Tensor, Tensor]:
        """Piece ids (int64, without bos/eos) of source and target sentence ``i`` of ``split``."""
        return tuple(d["tokens"][d["offsets"][i]:d["offsets"][i + 1]].long() for d in self._data[split])

    def encode(self, text: str, side: str) -> list[int]:
        """Piece ids of ``text`` (no bos/eos)."""
        return self._sp[self._lang(side)].encode(text, out_type=int)

    def decode(self, ids: Tensor | list[int], side: str) -> str:
        """Detokenized text of ``ids``: cut at the first eos, pad and bos dropped."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if EOS in ids:
            ids = ids[:ids.index(EOS)]
        return self._sp[self._lang(side)].decode([i for i in ids if i not in (PAD, BOS)])

    def references(self, split: str) -> list[str]:
        """The raw target-side lines of ``split`` (for BLEU), read from the corpus folder."""
        if self.corpus_dir is None:
            raise ValueError("references need corpus_dir; build with TranslationData.from_corpus")
        return _read_lines(self.corpus_dir / f"{split}.{self.tgt_lang}")

    def _padded(self, split: str, side: int, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Pieces of sentences ``ids`` as a B×(max len + 1) pad-filled matrix (one spare column) and their lengths."""
        tokens, offsets = self._data[split][side]["tokens"], self._data[split][side]["offsets"]
        starts, lengths = offsets[ids], offsets[ids + 1] - offsets[ids]
        cols = torch.arange(int(lengths.max()) + 1)
        inside = cols[None] < lengths[:, None]
        gather = torch.where(inside, starts[:, None] + cols[None], 0)
        values = tokens[gather].long() if len(tokens) else gather
        return torch.where(inside, values, PAD), lengths

    def collate(self, split: str, ids: list[int]) -> dict[str, Tensor | int]:
        """One batch of sentences ``ids`` of ``split``, padded on the right."""
        index = torch.tensor(ids, dtype=torch.long)
        rows = torch.arange(len(ids))
        src, src_len = self._padded(split, 0, index)
        src[rows, src_len] = EOS
        pieces, tgt_len = self._padded(split, 1, index)
        target = pieces.clone()
        target[rows, tgt_len] = EOS
        prev = torch.cat([torch.full((len(ids), 1), BOS), pieces[:, :-1]], 1)
        return {"src_tokens": src, "src_lengths": src_len + 1, "prev_output_tokens": prev, "target": target,
                "ntokens": int(tgt_len.sum() + len(ids)), "n_sentences": len(ids), "ids": index}

    def batch_indices(self, split: str, max_tokens: int, generator: torch.Generator | None = None,
                      shuffle: bool = True) -> list[list[int]]:
        """Sentence ids per batch, fairseq's ``batch_by_size`` on (src_len, tgt_len)-sorted ids."""
        kept, lens = self._kept[split], self._lens[split]
        if shuffle:
            if generator is None:
                raise ValueError("shuffle=True needs a torch.Generator")
            kept = kept[torch.randperm(len(kept), generator=generator)]  # random tie-break among equal lengths
        kept = kept[torch.sort(lens[kept, 1], stable=True).indices]
        kept = kept[torch.sort(lens[kept, 0], stable=True).indices]
        batches, current, current_max = [], [], 0
        for i, n_tok in zip(kept.tolist(), lens[kept].max(1).values.tolist()):
            if n_tok > max_tokens:
                raise ValueError(f"{split} sentence {i} has {n_tok} tokens > max_tokens={max_tokens}; raise "
                                 "max_tokens or set max_positions")
            if current and max(current_max, n_tok) * (len(current) + 1) > max_tokens:
                batches.append(current)
                current, current_max = [], 0
            current.append(i)
            current_max = max(current_max, n_tok)
        if current:
            batches.append(current)
        if shuffle:
            batches = [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def batches(self, split: str, max_tokens: int, generator: torch.Generator | None = None,
                shuffle: bool = True) -> list[dict[str, Tensor | int]]:
        """All batches of one pass over ``split``: each pair exactly once, deterministic per generator state.

        Each batch holds ``src_tokens`` B×S, ``src_lengths`` B, ``prev_output_tokens`` and ``target`` B×T, ``ntokens``
        (non-pad target tokens), ``n_sentences`` and ``ids`` (sentence indices in ``split``, to restore file order).
        """
        return [self.collate(split, ids) for ids in self.batch_indices(split, max_tokens, generator, shuffle)]

    def summary(self) -> dict[str, int | str]:
        """Sizes, vocabularies, filter count and spm model hashes, for run logs."""
        out = {f"size_{s}": self.size(s) for s in SPLITS}
        out.update(n_filtered=self.n_filtered, vocab_src=self.vocab_size("src"), vocab_tgt=self.vocab_size("tgt"))
        out.update({f"spm_{lang}": _sha256(p)[:16] for lang, p in self.models.items()})
        return out
