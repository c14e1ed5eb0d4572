"""Tests for the translation data pipeline: corpus preparation scripts, sentencepiece, token batching."""

from __future__ import annotations

import importlib.util
import io
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from emergence.data.translation import BOS, EOS, PAD, TranslationData, train_sentencepiece

torch.set_num_threads(1)
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
DING = Path("/usr/share/trans/de-en")
SRC, TGT = "fr", "sv"  # deliberately not de/en: nothing may assume the language pair
SYLLABLES = "ka lo mi nu re sa ti vo zu äp ör ße".split()


def _script(name: str):
    sys.path.insert(0, str(SCRIPTS))  # prepare_wmt16 imports prepare_iwslt14 from its own folder
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_corpus(root: Path, sizes=(300, 30, 30), seed: int = 0, long_train: int = 1) -> Path:
    """A toy parallel corpus: target = source words reversed in order, each word with a suffix."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(60)]
    root.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "valid", "test"), sizes):
        src = [" ".join(rng.choices(words, k=rng.randint(1, 15))) + rng.choice([".", "?", "’s!"]) for _ in range(n)]
        if split == "train":
            src += [" ".join(rng.choices(words, k=80)) + "."] * long_train  # for the max_positions filter
        tgt = [" ".join(w + "en" for w in reversed(s.split())) for s in src]
        (root / f"{split}.{SRC}").write_text("".join(s + "\n" for s in src), encoding="utf-8")
        (root / f"{split}.{TGT}").write_text("".join(t + "\n" for t in tgt), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def data(corpus, tmp_path_factory) -> TranslationData:
    return TranslationData.from_corpus(
        corpus, SRC, TGT, vocab_size=200, joint=True, cache_dir=tmp_path_factory.mktemp("cache"), max_positions=64
    )


# --- sentencepiece and encoding -------------------------------------------------------------------------------


def test_sentencepiece_training_is_byte_identical(corpus, tmp_path):
    for joint in (True, False):
        a = train_sentencepiece(corpus, SRC, TGT, 150, joint, tmp_path / f"a{joint}", seed=0, threads=2)
        b = train_sentencepiece(corpus, SRC, TGT, 150, joint, tmp_path / f"b{joint}", seed=0, threads=2)
        assert (a[SRC] == a[TGT]) is joint
        for lang in (SRC, TGT):
            assert a[lang].read_bytes() == b[lang].read_bytes()


def test_sentencepiece_cache_skips_then_retrains_on_change(tmp_path):
    corpus = _write_corpus(tmp_path / "c")
    model = train_sentencepiece(corpus, SRC, TGT, 150, True, tmp_path / "spm")[SRC]
    stamp = model.stat().st_mtime_ns
    assert train_sentencepiece(corpus, SRC, TGT, 150, True, tmp_path / "spm")[SRC].stat().st_mtime_ns == stamp
    with open(corpus / f"train.{SRC}", "a", encoding="utf-8") as f:
        f.write("zuzuzu kakaka.\n")
    with open(corpus / f"train.{TGT}", "a", encoding="utf-8") as f:
        f.write("kakakaen zuzuzuen.\n")
    train_sentencepiece(corpus, SRC, TGT, 150, True, tmp_path / "spm")
    assert model.stat().st_mtime_ns != stamp


def test_decode_reproduces_corpus_text(data, corpus):
    for split in ("valid", "test"):
        refs = data.references(split)
        assert [data.decode(data.pair(split, i)[1], "tgt") for i in range(len(refs))] == refs
        src_lines = (corpus / f"{split}.{SRC}").read_text(encoding="utf-8").splitlines()
        assert data.decode(data.pair(split, 0)[0], SRC) == src_lines[0]
    ids = data.encode(refs[0], "tgt")
    assert data.decode([BOS, *ids, EOS, PAD, PAD], "tgt") == refs[0]
    assert data.vocab_size("src") == data.vocab_size(TGT) <= 200


def test_encoded_cache_is_reused(corpus, tmp_path):
    TranslationData.from_corpus(corpus, SRC, TGT, 150, True, tmp_path)
    cached = sorted(tmp_path.glob("encoded.*.pt"))
    stamp = cached[0].stat().st_mtime_ns
    again = TranslationData.from_corpus(corpus, SRC, TGT, 150, True, tmp_path)
    assert sorted(tmp_path.glob("encoded.*.pt")) == cached and cached[0].stat().st_mtime_ns == stamp
    assert again.size("train") == 301


def test_from_corpus_missing_files_names_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"train\.{SRC}.*prepare_ding\.py"):
        TranslationData.from_corpus(tmp_path, SRC, TGT, 100, True, tmp_path / "cache")


# --- batching -------------------------------------------------------------------------------------------------


def test_batches_respect_max_tokens(data):
    for max_tokens in (64, 200, 1000):
        for b in data.batches("train", max_tokens, torch.Generator().manual_seed(0)):
            width = max(b["src_tokens"].shape[1], b["target"].shape[1])
            assert b["n_sentences"] * width <= max_tokens
            assert b["src_tokens"].shape[0] == b["target"].shape[0] == b["n_sentences"] == len(b["ids"])


def test_batches_cover_each_training_pair_once(data):
    batches = data.batches("train", 300, torch.Generator().manual_seed(1))
    ids = torch.cat([b["ids"] for b in batches]).sort().values
    assert torch.equal(ids, torch.arange(300))  # the 80-word pair (id 300) is dropped by max_positions
    assert data.n_filtered == 1 and data.size("train") == 300


def test_batches_deterministic_per_seed_and_differ_across_seeds(data):
    def order(seed):
        return [b["ids"].tolist() for b in data.batches("train", 300, torch.Generator().manual_seed(seed))]

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_batches_tensors_follow_conventions(data):
    for b in data.batches("valid", 250, shuffle=False):
        src, prev, tgt = b["src_tokens"], b["prev_output_tokens"], b["target"]
        assert torch.equal(prev[:, 0], torch.full((len(prev),), BOS))
        assert torch.equal(prev[:, 1:], tgt[:, :-1].masked_fill(tgt[:, :-1] == EOS, PAD))  # target shifted right
        for seq in (src, tgt):
            lengths = seq.ne(PAD).sum(1)
            assert torch.equal(seq[torch.arange(len(seq)), lengths - 1], torch.full((len(seq),), EOS))
            assert (seq.eq(EOS).sum(1) == 1).all()
            assert torch.equal(seq.ne(PAD), torch.arange(seq.shape[1])[None] < lengths[:, None])  # right-padded
        assert b["ntokens"] == int(tgt.ne(PAD).sum())
        assert torch.equal(b["src_lengths"], src.ne(PAD).sum(1))


def test_batches_bucket_by_length(data):
    gen = torch.Generator().manual_seed(0)
    batches = data.batches("train", 400, gen)
    pads = sum(int(b["src_tokens"].eq(PAD).sum()) for b in batches)
    total = sum(b["src_tokens"].numel() for b in batches)
    assert pads / total < 0.1  # sorting by length keeps padding small; random batches give ~50 %


def test_reversed_direction_swaps_sides(corpus, data, tmp_path):
    rev = TranslationData.from_corpus(corpus, TGT, SRC, 200, True, tmp_path, max_positions=64)
    assert rev.models[SRC] == rev.models[TGT] and rev.models[SRC].read_bytes() == data.models[SRC].read_bytes()
    for i in range(0, 300, 37):
        s, t = data.pair("train", i)
        rs, rt = rev.pair("train", i)
        assert torch.equal(s, rt) and torch.equal(t, rs)
    b = rev.batches("test", 500, shuffle=False)[0]
    assert (
        rev.decode(b["target"][0], "tgt")
        == (corpus / f"test.{SRC}").read_text(encoding="utf-8").splitlines()[int(b["ids"][0])]
    )


# --- Ding preparation ---------------------------------------------------------------------------------------------


def test_ding_cleaning_rules_on_sample_entries():
    ding = _script("prepare_ding")
    counts = __import__("collections").Counter()
    line = (
        "Abschied {m} | Er verabschiedete sich heute (von uns) . | Ich gehe jetzt nach Hause.; Ich gehe heim. :: "
        "leave | He took his leave [formal] . | I am going home now.; I go home."
    )
    assert ding.parse_entry(line, counts) == [
        ("Er verabschiedete sich heute.", "He took his leave."),
        ("Ich gehe jetzt nach Hause.", "I am going home now."),
    ]
    assert ding.parse_entry("a | b :: c\n", counts) == [] and counts["skipped_misaligned_entries"] == 1
    assert ding.parse_entry("# Version :: 1", counts) == []
    assert ding.clean_side("Haus {n} [ugs.] ((sehr) alt)") == "Haus"


def test_ding_split_is_disjoint_by_source_and_target():
    ding = _script("prepare_ding")
    pairs = [(f"s{i % 70} .", f"t{i % 90} .") for i in range(200)] + [(f"x{i}", f"y{i}") for i in range(100)]
    pairs = list(dict.fromkeys(pairs))
    splits = ding.split_pairs(pairs, n_valid=20, n_test=25, seed=0)
    assert (len(splits["valid"]), len(splits["test"])) == (20, 25)
    assert sorted(p for s in splits.values() for p in s) == sorted(pairs)
    for side in (0, 1):
        sets = {k: {p[side] for p in v} for k, v in splits.items()}
        assert not (sets["train"] & sets["valid"] or sets["train"] & sets["test"] or sets["valid"] & sets["test"])
    assert ding.split_pairs(pairs, 20, 25, seed=0) == splits != ding.split_pairs(pairs, 20, 25, seed=1)


def test_ding_missing_source_exits_with_install_hint(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "prepare_ding.py"),
            "--src",
            "de",
            "--tgt",
            "en",
            "--out",
            str(tmp_path),
            "--source",
            str(tmp_path / "de-en"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "apt-get install trans-de-en" in run.stderr


@pytest.mark.skipif(not DING.is_file(), reason="Debian package trans-de-en not installed (/usr/share/trans/de-en)")
def test_ding_prepare_is_deterministic_disjoint_and_reversible(tmp_path):
    ding = _script("prepare_ding")
    assert ding.main(["--src", "de", "--tgt", "en", "--out", str(tmp_path / "a")]) == 0
    # Second run through the CLI, in the reverse direction: the same files must come out byte for byte.
    subprocess.run(
        [sys.executable, str(SCRIPTS / "prepare_ding.py"), "--src", "en", "--tgt", "de", "--out", str(tmp_path / "b")],
        check=True,
        capture_output=True,
    )
    for split in ("train", "valid", "test"):
        for lang in ("de", "en"):
            name = f"{split}.{lang}"
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lines = {
        (s, lang): (tmp_path / "a" / f"{s}.{lang}").read_text(encoding="utf-8").splitlines()
        for s in ("train", "valid", "test")
        for lang in ("de", "en")
    }
    assert len(lines["valid", "de"]) == len(lines["test", "en"]) == 500 and len(lines["train", "de"]) > 17000
    for lang in ("de", "en"):
        train, valid, test = (set(lines[s, lang]) for s in ("train", "valid", "test"))
        assert not (train & valid or train & test or valid & test)


# --- IWSLT'14 / WMT'16 cleaning -----------------------------------------------------------------------------------


def test_iwslt_cleaning_functions_follow_recipe():
    iwslt = _script("prepare_iwslt14")
    assert iwslt.strip_train_tags("<url>http://ted.com</url>\n") is None
    assert iwslt.strip_train_tags("<title>Hallo Welt</title>") == "Hallo Welt"
    assert iwslt.extract_segments(["<doc>", '<seg id="3">  It’s fine. </seg>  \n']) == ["It's fine."]
    assert iwslt.clean_pair(" a  b | c ", "x y z") == ("a b c", "x y z")
    assert iwslt.clean_pair("a b c d", "x y") is None  # ratio 2 > 1.5
    assert iwslt.clean_pair("a b c", "x y") == ("a b c", "x y")  # ratio exactly 1.5 is kept
    assert iwslt.clean_pair("", "x") is None and iwslt.clean_pair("a " * 176, "x " * 176) is None
    train, valid = iwslt.split_every(list(range(1, 70)), 23)
    assert valid == [23, 46, 69] and len(train) == 66
    tokenize, _ = iwslt.make_tokenizer("none", "de")
    assert tokenize("  a\tb  c ") == "a b c"


def _add(tar: tarfile.TarFile, name: str, text: str) -> None:
    blob = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def test_iwslt_prepare_on_tiny_archive(tmp_path):
    iwslt = _script("prepare_iwslt14")
    archive = tmp_path / "de-en.tgz"
    de = ["<url>u</url>", "<title>Titel Eins</title>"] + [f"Satz {i} hier ." for i in range(46)] + ["a b c d e"]
    en = ["<url>u</url>", "<title>Title One</title>"] + [f"Sentence {i} here ." for i in range(46)] + ["x"]
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "de-en/train.tags.de-en.de", "\n".join(de) + "\n")
        _add(tar, "de-en/train.tags.de-en.en", "\n".join(en) + "\n")
        for name in iwslt.TEST_SETS:
            for lang, text in (("de", "Das ist’s"), ("en", "That’s It")):
                _add(tar, f"de-en/{name}.de-en.{lang}.xml", f'<doc>\n<seg id="1"> {text} </seg>\n</doc>\n')
    assert iwslt.main(["--archive", str(archive), "--out", str(tmp_path / "out"), "--tokenize", "none"]) == 0
    out = {f.name: f.read_text(encoding="utf-8").splitlines() for f in (tmp_path / "out").glob("*.*")}
    assert len(out["train.de"]) + len(out["valid.de"]) == 47  # url line dropped, ratio-5 pair cleaned away
    assert out["valid.en"] == ["sentence 21 here .", "sentence 44 here ."] and out["train.en"][0] == "title one"
    assert out["test.en"] == ["that's it"] * 5
    assert iwslt.main(["--archive", str(tmp_path / "none.tgz"), "--out", str(tmp_path / "x")]) == 1


def test_wmt_cleaning_and_prepare_on_tiny_files(tmp_path):
    wmt = _script("prepare_wmt16")
    assert wmt.remove_non_printing("a\u200bb\x07c") == "a b c"
    files = {}
    for name, text in {
        "tr.en": "One two three.\nToo long for its partner here\n",
        "tr.de": "Eins zwei drei.\nkurz\n",
        "dev.en": "Dev.\n",
        "dev.de": "Entw.\n",
        "test.en.sgm": '<srcset>\n<seg id="1">Test ’x’.</seg>\n',
        "test.de.sgm": '<seg id="1">T.</seg>\n',
    }.items():
        files[name] = tmp_path / name
        files[name].write_text(text, encoding="utf-8")
    args = [
        "--out",
        str(tmp_path / "out"),
        "--train",
        str(files["tr.en"]),
        str(files["tr.de"]),
        "--valid",
        str(files["dev.en"]),
        str(files["dev.de"]),
        "--test",
        str(files["test.en.sgm"]),
        str(files["test.de.sgm"]),
    ]
    assert wmt.main(args) == 0
    read = {n: (tmp_path / "out" / n).read_text(encoding="utf-8").splitlines() for n in ("train.en", "test.en")}
    assert read["train.en"] == ["One two three."]  # second pair fails the 1.5 ratio
    assert len(read["test.en"]) == 1 and read["test.en"][0].startswith("Test")
