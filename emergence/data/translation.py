"""Translation data: sentencepiece vocabularies, cached token ids and fairseq-style token-count batches.

Used for the paper's IWSLT'14 De-En Transformer experiment (docs/method.md#training-recipes) and its offline stand-in, the Ding corpus
(docs/environment.md#data-sources). A prepared corpus is a folder of aligned plain-text files ``{train,valid,test}.{lang}``, one
sentence per line, written by ``scripts/prepare_ding.py``, ``prepare_iwslt14.py`` or ``prepare_wmt16.py``. Languages
are parameters everywhere; nothing assumes German or English.

Conventions shared with ``emergence.models.transformer`` and ``emergence.models.decode``: ids pad = 0, bos = 1, eos = 2,
unk = 3. ``src_tokens`` = pieces + eos, ``target`` = pieces + eos, ``prev_output_tokens`` = bos + pieces, all right-
padded with pad. Batching follows fairseq: sort by (source length, target length) with a random tie-break, fill each
batch while max(length) * n_sentences <= max_tokens (length = max(src, tgt) including eos), then shuffle batch order.

    data = TranslationData.from_corpus("data/ding_de_en", "de", "en", vocab_size=8000, joint=True, cache_dir="cache")
    for batch in data.batches("train", max_tokens=4096, generator=torch.Generator().manual_seed(0)):
        logits = model(batch["src_tokens"], batch["prev_output_tokens"])

The spm models are cached in ``cache_dir`` next to a JSON file holding a hash of (training files, trainer args);
encoded splits are cached as ``encoded.<src>-<tgt>.<tokenizer>.<hash>.pt`` keyed by the spm model files and corpus
files; a new encoding replaces the older ones of the same pair and tokenizer. Use one cache folder per corpus.
``identity`` is a hash of the corpus files and the tokenizer model(s): the runner makes it part of a run's identity.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import sentencepiece as spm
import torch
from torch import Tensor

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPLITS = ("train", "valid", "test")
PREPARE_HINT = ("point data.corpus_dir at a prepared corpus, or prepare one: scripts/prepare_iwslt14.py, "
                "scripts/prepare_wmt16.py, or offline `python scripts/prepare_ding.py --src de --tgt en --out DIR` "
                "(`make data` builds data/ding_de_en)")


_HASHES: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for each (path, size, mtime)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _read_lines(path: Path) -> list[str]:
    # Split on "\n" only: str.splitlines() also breaks at U+2028 etc. and would misalign the two sides.
    text = Path(path).read_text(encoding="utf-8")
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def corpus_paths(corpus_dir: str | Path, src_lang: str, tgt_lang: str) -> dict[str, dict[str, Path]]:
    """``{split: {lang: path}}`` of a prepared corpus; FileNotFoundError naming missing files and the prepare step."""
    corpus_dir = Path(corpus_dir)
    paths = {s: {lang: corpus_dir / f"{s}.{lang}" for lang in (src_lang, tgt_lang)} for s in SPLITS}
    expected = f"{{{','.join(SPLITS)}}}.{{{src_lang},{tgt_lang}}}"
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"data.corpus_dir {corpus_dir} does not exist: a prepared corpus is a folder holding "
                                f"{expected}; {PREPARE_HINT}")
    missing = [p.name for langs in paths.values() for p in langs.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"data.corpus_dir {corpus_dir} is missing {', '.join(missing)} (a prepared corpus "
                                f"holds {expected}); {PREPARE_HINT}")
    return paths


def train_sentencepiece(corpus_dir: str | Path, src_lang: str, tgt_lang: str, vocab_size: int, joint: bool,
                        out_dir: str | Path, seed: int = 0, threads: int = 1,
                        model_type: str = "bpe") -> dict[str, Path]:
    """Train (or reuse) sentencepiece models on the train split; returns ``{lang: model path}``.

    ``joint=True`` trains one model on both sides (both languages map to the same file; the input files are sorted by
    language so de-en and en-de give the same model), ``joint=False`` one model per language. Identity normalization
    keeps decode(encode(x)) == x; with 1–2 threads training is deterministic (byte-identical model files, also
    across folders). Training is skipped when the model exists and its stored hash of (training files, trainer args)
    matches.
    """
    paths = corpus_paths(corpus_dir, src_lang, tgt_lang)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = [tuple(sorted((src_lang, tgt_lang)))] if joint else [(src_lang,), (tgt_lang,)]
    models = {}
    for langs in groups:
        inputs = [paths["train"][lang] for lang in langs]
        args = dict(vocab_size=vocab_size, model_type=model_type, character_coverage=1.0,
                    normalization_rule_name="identity", pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
                    input_sentence_size=0, num_threads=threads, hard_vocab_limit=False)
        key = _digest({"inputs": [_sha256(p) for p in inputs], "args": args, "seed": seed,
                       "spm": spm.__version__, "feed": "iterator"})
        prefix = out_dir / f"spm.{'-'.join(langs)}.{model_type}{vocab_size}"
        model, meta = Path(f"{prefix}.model"), Path(f"{prefix}.json")
        fresh = model.is_file() and meta.is_file() and json.loads(meta.read_text()).get("key") == key
        if not fresh:
            spm.set_random_generator_seed(seed)
            # Sentences go in through an iterator and the model comes back as bytes, so the stored trainer spec
            # holds no file paths: the same corpus gives byte-identical models wherever it lives.
            sentences = (line for p in inputs for line in _read_lines(p))
            buffer = io.BytesIO()
            with open(os.devnull, "w") as devnull:
                spm.SentencePieceTrainer.train(sentence_iterator=sentences, model_writer=buffer, logstream=devnull,
                                               **args)
            model.write_bytes(buffer.getvalue())
            # Written after the model, so an interrupted training is retrained next time.
            meta.write_text(json.dumps({"key": key, "inputs": [str(p) for p in inputs], "args": args}, indent=2))
        models.update({lang: model for lang in langs})
    return models


def encode_corpus(corpus_dir: str | Path, src_lang: str, tgt_lang: str, models: dict[str, Path],
                  cache_dir: str | Path) -> dict[str, dict[str, Tensor]]:
    """Token ids (pieces only, no bos/eos) of every split and side, cached on disk.

    Returns ``{"<split>.<lang>": {"tokens": int32 flat tensor, "offsets": int64 tensor of n + 1 offsets}}``; sentence
    i is ``tokens[offsets[i]:offsets[i + 1]]``. The cache file is keyed by the spm model and corpus file hashes and is
    loaded with ``weights_only=True``.
    """
    paths = corpus_paths(corpus_dir, src_lang, tgt_lang)
    files = {f"{s}.{lang}": p for s, langs in paths.items() for lang, p in langs.items()}
    key = _digest({"models": {lang: _sha256(models[lang]) for lang in (src_lang, tgt_lang)},
                   "files": {name: _sha256(p) for name, p in files.items()}})
    tokenizer = "+".join(sorted({Path(models[lang]).stem for lang in (src_lang, tgt_lang)}))
    stem = f"encoded.{src_lang}-{tgt_lang}.{tokenizer}"
    cache = Path(cache_dir) / f"{stem}.{key[:16]}.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    processors = {lang: spm.SentencePieceProcessor(model_file=str(models[lang])) for lang in (src_lang, tgt_lang)}
    encoded = {}
    for split in SPLITS:
        lines = {lang: _read_lines(paths[split][lang]) for lang in (src_lang, tgt_lang)}
        if len(lines[src_lang]) != len(lines[tgt_lang]):
            raise ValueError(f"{split}: {len(lines[src_lang])} {src_lang} lines vs {len(lines[tgt_lang])} {tgt_lang}")
        for lang, text in lines.items():
            ids = processors[lang].encode(text, out_type=int, num_threads=1)
            lengths = torch.tensor([0] + [len(x) for x in ids], dtype=torch.int64)
            flat = torch.tensor([t for x in ids for t in x], dtype=torch.int32)
            encoded[f"{split}.{lang}"] = {"tokens": flat, "offsets": torch.cumsum(lengths, 0)}
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save(encoded, tmp)
    tmp.replace(cache)  # atomic: a half-written cache is never loaded
    # one cache per corpus + tokenizer: older encodings of this pair with this tokenizer (or unnamed ones) go
    for old in Path(cache_dir).glob(f"encoded.{src_lang}-{tgt_lang}.*.pt"):
        if old != cache and (old.name.startswith(stem + ".") or len(old.name.split(".")) == 4):
            old.unlink(missing_ok=True)
    return encoded


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
