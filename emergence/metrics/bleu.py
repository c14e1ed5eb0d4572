"""Corpus BLEU through sacreBLEU, with its signature recorded next to every score.

The paper reports BLEU on IWSLT'14 De-En (docs/method.md#training-recipes). Scoring choices (tokenized vs
detokenized, tokenizer,
casing) move BLEU by up to a point, so every score carries sacreBLEU's signature, e.g.
``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``. Inputs are detokenized text (spm ``decode`` output
and the raw reference lines); the score equals ``sacrebleu REF -i HYP -b`` on files written by
``write_translations``.

    result = corpus_bleu(hyps, refs)          # {"score": 27.3, "signature": "nrefs:1|case:mixed|..."}
"""

from __future__ import annotations

from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF


def corpus_bleu(hyps: list[str], refs: list[str], tokenize: str = "13a", lowercase: bool = False) -> dict[str, object]:
    """Corpus BLEU of ``hyps`` against one reference each.

    Args:
        hyps: detokenized system outputs, one per sentence.
        refs: detokenized references, aligned with ``hyps``.
        tokenize: sacreBLEU tokenizer (``13a``, ``intl``, ``char`` or ``none`` work offline).
        lowercase: case-insensitive scoring.

    Returns:
        ``{"score": float in [0, 100], "signature": str, "text": sacreBLEU's one-line summary}``.
    """
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses vs {len(refs)} references")
    metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    result = metric.corpus_score(list(hyps), [list(refs)])
    return {"score": float(result.score), "signature": str(metric.get_signature()), "text": str(result)}


def tokenized_bleu(hyps: list[str], refs: list[str]) -> dict[str, object]:
    """BLEU on the text's own whitespace tokens, no smoothing (sacreBLEU ``tokenize="none"``, ``smooth_method="none"``).

    On a lowercased, Moses-tokenized corpus after BPE removal (IWSLT'14 as prepared by fairseq's recipe) this is the
    "tokenized BLEU" that fairseq-generate and multi-bleu.perl report and that papers quote (docs/method.md); it is not
    comparable with sacreBLEU's default (13a-tokenized) score.
    """
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses vs {len(refs)} references")
    metric = BLEU(tokenize="none", smooth_method="none")
    result = metric.corpus_score(list(hyps), [list(refs)])
    return {"score": float(result.score), "signature": str(metric.get_signature())}


def corpus_chrf(hyps: list[str], refs: list[str]) -> dict[str, object]:
    """Corpus chrF (sacreBLEU's defaults: character 6-grams, beta 2) with its signature; smoother than BLEU when
    BLEU is near 0, so it carries early-training comparisons (README "Translation")."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses vs {len(refs)} references")
    metric = CHRF()
    result = metric.corpus_score(list(hyps), [list(refs)])
    return {"score": float(result.score), "signature": str(metric.get_signature())}


def _one_line(text: str) -> str:
    # A newline inside a sentence would shift every later line of the file.
    return " ".join(text.splitlines())


def write_translations(path: str | Path, srcs: list[str], hyps: list[str], refs: list[str]) -> dict[str, Path]:
    """Write aligned ``<path>.src``, ``<path>.hyp``, ``<path>.ref`` (one sentence per line, UTF-8).

    ``sacrebleu <path>.ref -i <path>.hyp`` then reproduces ``corpus_bleu``. Returns ``{"src"|"hyp"|"ref": file}``.
    """
    if not len(srcs) == len(hyps) == len(refs):
        raise ValueError(f"unaligned: {len(srcs)} sources, {len(hyps)} hypotheses, {len(refs)} references")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {}
    for kind, lines in (("src", srcs), ("hyp", hyps), ("ref", refs)):
        files[kind] = Path(f"{path}.{kind}")
        files[kind].write_text("".join(_one_line(s) + "\n" for s in lines), encoding="utf-8")
    return files
