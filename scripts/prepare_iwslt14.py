"""Prepare IWSLT'14 German–English the way fairseq's ``examples/translation/prepare-iwslt14.sh`` does, in Python.

This is the paper's translation benchmark (docs/method.md#training-recipes, GradInit's ``transformer_iwslt_de_en``
recipe). It needs the
TED 2014 release archive, which cannot be downloaded on the project's machines; fetch it elsewhere from
``IWSLT14_URL`` (fairseq's mirror of https://wit3.fbk.eu/archive/2014-01/texts/de/en/de-en.tgz) and pass its path:

    python scripts/prepare_iwslt14.py --archive de-en.tgz --out data/iwslt14_de_en

Steps, following the fairseq recipe (the BPE step is replaced by sentencepiece in ``emergence/data/translation.py``):

- train: ``train.tags.de-en.{de,en}``; drop lines holding ``<url>``, ``<talkid>`` or ``<keywords>``; delete the
  tags ``<title> </title> <description> </description>``; tokenize; clean like Moses
  ``clean-corpus-n.perl -ratio 1.5 … 1 175`` (delete ``|``, collapse whitespace, drop pairs with an empty side, more
  than 175 or fewer than 1 tokens on a side, or a token-count ratio above 1.5 either way); lowercase.
- valid = every 23rd line of the cleaned train (1-based line numbers 23, 46, …; ≈ 7.3k); train = the rest (≈ 160k).
- test = ``IWSLT14.TED.dev2010``, ``IWSLT14.TEDX.dev2012``, ``IWSLT14.TED.tst2010``, ``tst2011``, ``tst2012``
  concatenated in that order (≈ 6.75k): text of the ``<seg id=…>`` lines, ``’`` replaced by ``'``, tokenized,
  lowercased, not length-filtered.

Tokenization: with ``--tokenize moses`` (default) Moses tokenization through ``sacremoses`` (``escape=False``, so no
``&apos;`` entities) when that package is installed; otherwise, and with ``--tokenize none``, whitespace splitting
only, which changes the token counts the length filter sees. ``meta.json`` records which one ran. ``--no-lowercase``
keeps case. The cleaning functions below are also used by ``prepare_wmt16.py`` and tested on tiny strings.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

IWSLT14_URL = "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz"
TEST_SETS = (
    "IWSLT14.TED.dev2010",
    "IWSLT14.TEDX.dev2012",
    "IWSLT14.TED.tst2010",
    "IWSLT14.TED.tst2011",
    "IWSLT14.TED.tst2012",
)
_DROP_TAGS = ("<url>", "<talkid>", "<keywords>")
_DELETE_TAGS = re.compile(r"</?(title|description)>")
_SEG_OPEN = re.compile(r'<seg id="[0-9]*">\s*')
_SEG_CLOSE = re.compile(r"\s*</seg>\s*")


def strip_train_tags(line: str) -> str | None:
    """The recipe's ``grep -v``/``sed`` on a ``train.tags`` line: None for metadata lines, else the tag-free text."""
    if any(tag in line for tag in _DROP_TAGS):
        return None
    return _DELETE_TAGS.sub("", line.rstrip("\n"))


def extract_segments(xml_lines: Iterable[str]) -> list[str]:
    """Text of the ``<seg id="N">…</seg>`` lines of an IWSLT/WMT xml or sgm file, ``’`` mapped to ``'``."""
    out = []
    for line in xml_lines:
        if "<seg id" in line:
            text = _SEG_CLOSE.sub("", _SEG_OPEN.sub("", line.rstrip("\n")))
            out.append(text.replace("\u2019", "'"))
    return out


def make_tokenizer(kind: str, lang: str) -> tuple[Callable[[str], str], str]:
    """Return (tokenize function, name of the tokenizer actually used) for ``kind`` in {moses, none}."""
    if kind == "moses":
        try:
            from sacremoses import MosesTokenizer
        except ImportError:
            print("warning: sacremoses not installed; falling back to whitespace tokenization", file=sys.stderr)
        else:
            moses = MosesTokenizer(lang=lang)
            return (lambda s: moses.tokenize(s, return_str=True, escape=False)), "sacremoses"
    elif kind != "none":
        raise ValueError(f"unknown tokenizer {kind!r}")
    return (lambda s: " ".join(s.split())), "whitespace"


def clean_pair(src: str, tgt: str, min_len: int = 1, max_len: int = 175, ratio: float = 1.5) -> tuple[str, str] | None:
    """Moses ``clean-corpus-n.perl``: normalized (src, tgt) or None when the pair fails the length/ratio filter."""
    src = " ".join(src.replace("|", "").split())
    tgt = " ".join(tgt.replace("|", "").split())
    if not src or not tgt:
        return None
    ns, nt = len(src.split(" ")), len(tgt.split(" "))
    if not (min_len <= ns <= max_len and min_len <= nt <= max_len):
        return None
    if ns / nt > ratio or nt / ns > ratio:
        return None
    return src, tgt


def clean_corpus(src_lines: list[str], tgt_lines: list[str], **limits) -> list[tuple[str, str]]:
    """``clean_pair`` over aligned line lists; raises if the sides are not aligned."""
    if len(src_lines) != len(tgt_lines):
        raise ValueError(f"unaligned sides: {len(src_lines)} vs {len(tgt_lines)} lines")
    return [p for p in (clean_pair(s, t, **limits) for s, t in zip(src_lines, tgt_lines)) if p is not None]


def split_every(pairs: list, every: int = 23) -> tuple[list, list]:
    """The recipe's awk split: 1-based line numbers divisible by ``every`` go to valid; returns (train, valid)."""
    train = [p for i, p in enumerate(pairs, start=1) if i % every]
    valid = [p for i, p in enumerate(pairs, start=1) if not i % every]
    return train, valid


def write_corpus(out: Path, splits: dict[str, list[tuple[str, str]]], src: str, tgt: str, meta: dict) -> None:
    """Write ``{split}.{src}``/``{split}.{tgt}`` and ``meta.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for split, pairs in splits.items():
        for side, lang in enumerate((src, tgt)):
            (out / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8")
    meta = {**meta, "sizes": {split: len(pairs) for split, pairs in splits.items()}}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in meta["sizes"].items()))


def _read_member(tar: tarfile.TarFile, name: str) -> list[str]:
    member = next((m for m in tar.getmembers() if m.name.endswith("/" + name) or m.name == name), None)
    if member is None:
        raise SystemExit(f"error: {name} not found in the archive")
    return tar.extractfile(member).read().decode("utf-8").splitlines()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, required=True, help="IWSLT 2014 release archive, e.g. de-en.tgz")
    parser.add_argument("--out", type=Path, required=True, help="output corpus folder")
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    parser.add_argument("--tokenize", choices=("moses", "none"), default="moses")
    parser.add_argument("--no-lowercase", action="store_true", help="keep case (the recipe lowercases)")
    args = parser.parse_args(argv)
    if not args.archive.is_file():
        print(
            f"error: archive {args.archive} not found. Download it on a machine with network access:\n"
            f"  wget {IWSLT14_URL}",
            file=sys.stderr,
        )
        return 1
    pair = f"{args.src}-{args.tgt}"
    lower = (lambda s: s) if args.no_lowercase else str.lower
    sides, tests, tok_name = {}, {}, "whitespace"
    with tarfile.open(args.archive) as tar:
        for lang in (args.src, args.tgt):
            tokenize, tok_name = make_tokenizer(args.tokenize, lang)
            raw = _read_member(tar, f"train.tags.{pair}.{lang}")
            sides[lang] = [tokenize(t) for t in (strip_train_tags(x) for x in raw) if t is not None]
            tests[lang] = [
                lower(tokenize(s))
                for name in TEST_SETS
                for s in extract_segments(_read_member(tar, f"{name}.{pair}.{lang}.xml"))
            ]
    cleaned = [(lower(s), lower(t)) for s, t in clean_corpus(sides[args.src], sides[args.tgt], max_len=175)]
    train, valid = split_every(cleaned, 23)
    splits = {"train": train, "valid": valid, "test": list(zip(tests[args.src], tests[args.tgt], strict=True))}
    meta = {
        "corpus": "iwslt14",
        "archive": str(args.archive),
        "tokenizer": tok_name,
        "lowercase": not args.no_lowercase,
        "train_lines_before_clean": len(sides[args.src]),
        "train_pairs_after_clean": len(cleaned),
    }
    write_corpus(args.out, splits, args.src, args.tgt, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
