"""Tests for emergence.metrics.bleu: agreement with the sacreBLEU command-line tool, perfect score, signature."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from emergence.metrics.bleu import corpus_bleu, write_translations

SACREBLEU_CLI = Path(sys.executable).parent / "sacrebleu"
WORDS = "the a cat dog sat ran on under mat house red big small , quickly it's don't".split()


def _sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choices(WORDS, k=rng.randint(3, 12))).capitalize() + rng.choice([".", "!", "?"]) for _ in range(n)
    ]


def _noisy(refs: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for ref in refs:
        words = ref.split()
        for _ in range(rng.randint(0, 3)):
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        out.append(" ".join(words[: max(1, len(words) - rng.randint(0, 2))]))
    return out


@pytest.mark.skipif(not SACREBLEU_CLI.is_file(), reason=f"sacrebleu CLI not found at {SACREBLEU_CLI}")
@pytest.mark.parametrize("tokenize", ["13a", "intl"])
def test_corpus_bleu_matches_sacrebleu_cli(tmp_path, tokenize):
    refs = _sentences(60, seed=1)
    hyps = _noisy(refs, seed=2)
    files = write_translations(tmp_path / "test", ["src"] * len(refs), hyps, refs)
    cli = subprocess.run(
        [str(SACREBLEU_CLI), str(files["ref"]), "-i", str(files["hyp"]), "-b", "-w", "4", "-tok", tokenize],
        capture_output=True,
        text=True,
        check=True,
    )
    ours = corpus_bleu(hyps, refs, tokenize=tokenize)
    assert 5.0 < ours["score"] < 95.0  # a non-trivial score, so agreement means something
    assert ours["score"] == pytest.approx(float(cli.stdout.strip()), abs=1e-4)


def test_corpus_bleu_identical_is_100():
    refs = _sentences(20, seed=3)
    assert corpus_bleu(refs, refs)["score"] == pytest.approx(100.0)


def test_corpus_bleu_signature_recorded():
    sig = corpus_bleu(["A b c d."], ["A b c e."])["signature"]
    assert sig == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}"
    assert "tok:char" in corpus_bleu(["A b c d."], ["A b c e."], tokenize="char")["signature"]


def test_corpus_bleu_rejects_unaligned():
    with pytest.raises(ValueError):
        corpus_bleu(["a b c"], ["a b c", "d e f"])


def test_write_translations_keeps_lines_aligned(tmp_path):
    files = write_translations(tmp_path / "sub" / "valid", ["s1", "s2"], ["line\nbreak", "h2"], ["r1", "r2"])
    for kind, path in files.items():
        assert path.name == f"valid.{kind}"
        assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert files["hyp"].read_text(encoding="utf-8") == "line break\nh2\n"
