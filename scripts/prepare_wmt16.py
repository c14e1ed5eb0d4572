"""Prepare WMT'16 English–German from raw files already on disk (the large-scale translation setting).

No network here: download elsewhere (WMT'16 news task, https://www.statmt.org/wmt16/translation-task.html) the
Europarl v7, Common Crawl and News Commentary v11 parallel files plus newstest2013 (valid) and newstest2014 (test),
the sets fairseq's WMT'16 En-De recipe trains and evaluates on. Then pass aligned file pairs (source file first):

    python scripts/prepare_wmt16.py --src en --tgt de --out data/wmt16_en_de \\
        --train europarl-v7.de-en.en europarl-v7.de-en.de --train commoncrawl.de-en.en commoncrawl.de-en.de \\
        --train news-commentary-v11.de-en.en news-commentary-v11.de-en.de \\
        --valid newstest2013.en newstest2013.de \\
        --test newstest2014-deen-src.en.sgm newstest2014-deen-ref.de.sgm

Cleaning (shared with ``prepare_iwslt14.py``): ``.sgm``/``.xml`` files contribute the text of their ``<seg>`` lines;
non-printing characters (Unicode category C) become spaces, like Moses ``remove-non-printing-char.perl``; punctuation
is normalized with ``sacremoses.MosesPunctNormalizer`` when that package is installed (skipped otherwise); optional
tokenization (``--tokenize moses``; default ``none`` keeps raw text for sentencepiece and sacreBLEU); train pairs pass
Moses ``clean-corpus-n`` with lengths 1–250 and ratio 1.5 (fairseq's WMT recipe); valid/test are not filtered. Case
is kept.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

from prepare_iwslt14 import clean_corpus, extract_segments, make_tokenizer, write_corpus  # next to this file


def remove_non_printing(text: str) -> str:
    """Replace Unicode category-C characters (controls, format, private use, unassigned) with spaces."""
    return "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)


def read_lines(path: Path) -> list[str]:
    """Lines of a plain-text file, or the ``<seg>`` texts of an ``.sgm``/``.xml`` file."""
    with open(path, encoding="utf-8") as f:
        if path.suffix in (".sgm", ".xml"):
            return extract_segments(f)
        return [line.rstrip("\n") for line in f]


def make_normalizer(lang: str):
    """Moses punctuation normalization via sacremoses if installed, else the identity; returns (fn, name)."""
    try:
        from sacremoses import MosesPunctNormalizer
    except ImportError:
        return (lambda s: s), "none"
    norm = MosesPunctNormalizer(lang=lang)
    return norm.normalize, "sacremoses"


def preprocess(lines: list[str], lang: str, tokenize_kind: str) -> tuple[list[str], dict]:
    """Non-printing removal, punctuation normalization and tokenization of one side."""
    normalize, norm_name = make_normalizer(lang)
    tokenize, tok_name = make_tokenizer(tokenize_kind, lang)
    return [tokenize(normalize(remove_non_printing(s))) for s in lines], {
        "normalizer": norm_name,
        "tokenizer": tok_name,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", default="en")
    parser.add_argument("--tgt", default="de")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", nargs=2, action="append", type=Path, required=True, metavar=("SRC", "TGT"))
    parser.add_argument("--valid", nargs=2, type=Path, required=True, metavar=("SRC", "TGT"))
    parser.add_argument("--test", nargs=2, type=Path, required=True, metavar=("SRC", "TGT"))
    parser.add_argument("--tokenize", choices=("moses", "none"), default="none")
    parser.add_argument("--max-len", type=int, default=250, help="clean-corpus-n maximum tokens per side")
    args = parser.parse_args(argv)
    files = [p for pair in [*args.train, args.valid, args.test] for p in pair]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        print(
            "error: missing files: "
            + ", ".join(missing)
            + "\nDownload the WMT'16 news task data from https://www.statmt.org/wmt16/translation-task.html",
            file=sys.stderr,
        )
        return 1
    splits, info = {}, {}
    for split, pairs in (("train", args.train), ("valid", [args.valid]), ("test", [args.test])):
        src_lines, tgt_lines = [], []
        for src_file, tgt_file in pairs:
            s, info[args.src] = preprocess(read_lines(src_file), args.src, args.tokenize)
            t, info[args.tgt] = preprocess(read_lines(tgt_file), args.tgt, args.tokenize)
            if len(s) != len(t):
                print(f"error: {src_file} and {tgt_file} are not aligned ({len(s)} vs {len(t)})", file=sys.stderr)
                return 1
            src_lines += s
            tgt_lines += t
        if split == "train":
            splits[split] = clean_corpus(src_lines, tgt_lines, max_len=args.max_len)
            info["train_pairs_before_clean"] = len(src_lines)
        else:
            splits[split] = list(zip(src_lines, tgt_lines))
    write_corpus(args.out, splits, args.src, args.tgt, {"corpus": "wmt16", "files": [str(p) for p in files], **info})
    return 0


if __name__ == "__main__":
    sys.exit(main())
