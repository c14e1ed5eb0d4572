"""Prepared translation corpora on disk: file layout, sentencepiece models and cached token ids.

A prepared corpus is a folder of aligned plain-text files ``{train,valid,test}.{lang}``, one sentence per line
(``scripts/prepare_ding.py``, ``prepare_iwslt14.py``, ``prepare_wmt16.py``). ``train_sentencepiece`` trains (or reuses)
the spm model(s) on the train split, ``encode_corpus`` turns every split into cached token ids; both caches are keyed by
file hashes (details in their docstrings). ``emergence.data.translation.TranslationData`` serves batches from them.
Special ids: pad = 0, bos = 1, eos = 2, unk = 3.
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
DING_SOURCE = "/usr/share/trans/de-en"  # the Ding dictionary (GPL-2+) that scripts/prepare_ding.py reads
DING_PACKAGE = "trans-de-en"  # the Debian package that installs DING_SOURCE
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
