"""Build the offline German–English sentence corpus from the Ding dictionary (Debian package ``trans-de-en``).

The paper's IWSLT'14 De-En cannot be downloaded on the project's machines (docs/environment.md#data-sources), so this
corpus is the
offline stand-in for the translation experiments. The Ding file is GPL-2+: the corpus is built at set-up time into a
gitignored folder and never committed.

Usage::

    python scripts/prepare_ding.py --src de --tgt en --out data/ding_de_en
    python scripts/prepare_ding.py --src en --tgt de --out data/ding_en_de     # same pairs, sides swapped

Input format: one entry per line, ``left side :: right side`` (the file name ``de-en`` names the languages of the two
sides); ``#`` lines are headers. Cleaning rules (version ``RULES_VERSION``, applied in this order):

1. Split each entry's two sides on `` | `` into aligned sub-entries; skip the entry if the counts differ.
2. In every sub-entry remove annotations ``{…}`` (gender/number), ``[…]`` (register, region, field) and ``(…)``
   (comments), innermost first so nested brackets go too.
3. Keep the first synonym: the text before the first ``; ``.
4. Collapse whitespace runs to one space, trim, and drop a space left before ``. , ! ? ; :`` by step 2.
5. Keep the pair only if both sides are non-empty, have >= 4 whitespace-separated words and end in ``.``, ``!`` or
   ``?``.
6. Deduplicate identical (left, right) pairs, keeping the first occurrence in file order.
7. Split deterministically: pairs sharing a left or a right sentence are grouped (union-find), the groups are
   permuted with numpy's PCG64 seeded by ``--seed``, and whole groups fill test, then valid (a group is taken only if
   it fits the remaining quota), the rest is train. So valid and test share no source and no target sentence with
   train or with each other. The split is computed on the file's own orientation, so ``--src en --tgt de`` gives the
   same three splits with the sides swapped.

Outputs ``{train,valid,test}.{src}`` / ``.{tgt}`` (UTF-8, one sentence per line, aligned) and ``meta.json`` (rules
version, per-stage counts, split sizes, seed, source file sha256). Runs in a few seconds; imports no torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from emergence.data.corpus import DING_PACKAGE, DING_SOURCE

RULES_VERSION = 1
DEFAULT_SOURCE, DEBIAN_PACKAGE = DING_SOURCE, DING_PACKAGE  # the dictionary file and its Debian package
_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)")  # innermost {…}, […] or (…)
_SPACE_BEFORE_PUNCT = re.compile(r" ([.,!?;:])")
_SENTENCE_END = (".", "!", "?")


def clean_side(text: str) -> str:
    """Apply rules 2–4 to one sub-entry: strip annotations, keep the first synonym, normalize whitespace."""
    n_subs = int("{" in text or "[" in text or "(" in text)  # skip the regex for plain text (most of the file)
    while n_subs:  # innermost brackets first, until nothing changes (rule 2)
        text, n_subs = _ANNOTATION.subn(" ", text)
    text = text.split("; ")[0]
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def is_sentence(text: str, min_words: int = 4) -> bool:
    """Rule 5: at least ``min_words`` words and a final ``. ! ?``."""
    return len(text.split()) >= min_words and text.endswith(_SENTENCE_END)


def parse_entry(line: str, counts: Counter) -> list[tuple[str, str]]:
    """Rules 1–5 for one dictionary line; returns the kept (left, right) pairs and updates ``counts``."""
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("#"):
        return []
    if " :: " not in line:
        counts["skipped_malformed_entries"] += 1
        return []
    counts["entries"] += 1
    left, right = line.split(" :: ", 1)
    lefts, rights = left.split(" | "), right.split(" | ")
    if len(lefts) != len(rights):
        counts["skipped_misaligned_entries"] += 1
        return []
    kept = []
    for a, b in zip(lefts, rights):
        counts["sub_entries"] += 1
        a, b = clean_side(a), clean_side(b)
        if not a or not b:
            continue
        counts["pairs_nonempty"] += 1
        if len(a.split()) < 4 or len(b.split()) < 4:
            continue
        counts["pairs_ge4_words"] += 1
        if not (is_sentence(a) and is_sentence(b)):
            continue
        counts["pairs_sentences"] += 1
        kept.append((a, b))
    return kept


def split_pairs(pairs: list[tuple[str, str]], n_valid: int, n_test: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """Rule 7: group pairs that share a left or right sentence, permute groups, fill test, valid, then train."""
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[tuple[int, str], int] = {}
    for i, (a, b) in enumerate(pairs):
        for key in ((0, a), (1, b)):
            j = first_seen.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    ordered = [groups[root] for root in sorted(groups)]  # file order, independent of dict internals
    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(ordered))
    quota = {"test": n_test, "valid": n_valid}
    assigned: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for g in order:
        members = ordered[g]
        target = next((s for s in ("test", "valid") if len(members) <= quota[s]), "train")
        if target != "train":
            quota[target] -= len(members)
        assigned[target].extend(members)
    if quota["test"] or quota["valid"]:
        raise ValueError(f"corpus too small for valid={n_valid} test={n_test}: {len(pairs)} pairs")
    return {split: [pairs[i] for i in sorted(idx)] for split, idx in assigned.items()}


def build(source: Path, n_valid: int, n_test: int, seed: int) -> tuple[dict[str, list[tuple[str, str]]], dict]:
    """Run all rules on the Ding file; returns the splits in file orientation and the per-stage counts."""
    counts: Counter = Counter()
    pairs: list[tuple[str, str]] = []
    with open(source, encoding="utf-8") as f:
        for line in f:
            pairs.extend(parse_entry(line, counts))
    unique = list(dict.fromkeys(pairs))
    counts["pairs_unique"] = len(unique)
    splits = split_pairs(unique, n_valid, n_test, seed)
    order = (
        "entries",
        "skipped_misaligned_entries",
        "skipped_malformed_entries",
        "sub_entries",
        "pairs_nonempty",
        "pairs_ge4_words",
        "pairs_sentences",
        "pairs_unique",
    )
    return splits, {k: counts[k] for k in order}


def file_langs(source: Path) -> tuple[str, str]:
    """The two sides' languages from the file name (``de-en`` → de, en)."""
    parts = source.name.split("-")
    if len(parts) != 2 or not all(parts):
        raise SystemExit(f"cannot infer languages from file name {source.name!r}; expected e.g. 'de-en'")
    return parts[0], parts[1]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="source language code (one side of the Ding file)")
    parser.add_argument("--tgt", required=True, help="target language code (the other side)")
    parser.add_argument("--out", required=True, type=Path, help="output corpus folder")
    parser.add_argument("--source", type=Path, default=Path(DEFAULT_SOURCE), help="Ding dictionary file")
    parser.add_argument("--valid", type=int, default=500, help="number of validation pairs")
    parser.add_argument("--test", type=int, default=500, help="number of test pairs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split permutation")
    args = parser.parse_args(argv)

    if not args.source.is_file():
        print(
            f"error: Ding dictionary not found at {args.source}.\n"
            f"Install the Debian package: sudo apt-get install {DEBIAN_PACKAGE}  (GPL-2+; never commit the corpus)",
            file=sys.stderr,
        )
        return 1
    left, right = file_langs(args.source)
    if {args.src, args.tgt} != {left, right} or args.src == args.tgt:
        print(f"error: --src/--tgt must be {left} and {right} (in either order) for {args.source}", file=sys.stderr)
        return 1
    splits, counts = build(args.source, args.valid, args.test, args.seed)
    swap = args.src != left
    args.out.mkdir(parents=True, exist_ok=True)
    for split, pairs in splits.items():
        src_lines, tgt_lines = (
            ([b for _, b in pairs], [a for a, _ in pairs]) if swap else ([a for a, _ in pairs], [b for _, b in pairs])
        )
        for lang, lines in ((args.src, src_lines), (args.tgt, tgt_lines)):
            (args.out / f"{split}.{lang}").write_text("".join(s + "\n" for s in lines), encoding="utf-8")
    sizes = {split: len(pairs) for split, pairs in splits.items()}
    meta = {
        "corpus": "ding",
        "rules_version": RULES_VERSION,
        "src": args.src,
        "tgt": args.tgt,
        "seed": args.seed,
        "source_file": str(args.source),
        "source_sha256": hashlib.sha256(args.source.read_bytes()).hexdigest(),
        "counts": counts,
        "sizes": sizes,
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for stage, n in counts.items():
        print(f"{stage:>28}: {n}")
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
