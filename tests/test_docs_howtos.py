"""docs/extending.md followed literally: every ``# file:`` block of the page is written into a temporary folder kept
outside the repository, and every ``python -m emergence.train`` command of the page is run on it through
``hydra.searchpath`` at smoke size (a new initializer, architecture, image dataset and translation corpus)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_translation_task import write_corpus

PAGE = ROOT / "docs" / "extending.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks():
    return [(lang, body) for lang, body in BLOCK.findall(PAGE.read_text(encoding="utf-8"))]


def files() -> dict[str, str]:
    out = {}
    for _, body in blocks():
        first, _, rest = body.partition("\n")
        m = re.fullmatch(r"# file: (\S+)", first.strip())
        if m:
            out[m.group(1)] = body
    return out


def commands() -> list[str]:
    return [line.strip() for lang, body in blocks() if lang == "bash" for line in body.splitlines()
            if line.strip().startswith("python -m emergence.train")]  # fmt: skip


def test_the_page_has_the_four_recipes():
    assert set(files()) == {
        "my_inits.py", "my_models.py", "my_data.py", "conf/init/scaled_normal.yaml", "conf/arch/two_layer.yaml",
        "conf/data/rings.yaml", "conf/data/fr_en.yaml",
    }  # fmt: skip
    assert len(commands()) == 4 and all("hydra.searchpath=[file://$EXT/conf]" in c for c in commands())


def fr_en_corpus(data_dir):
    """Tiny synthetic parallel files named as the page says: {train,valid,test}.fr / .en."""
    tmp = write_corpus(data_dir / "tmp_xx_yy", n_train=120, n_eval=10)
    out = data_dir / "fr_en"
    out.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (out / f"{split}.fr").write_text((tmp / f"{split}.xx").read_text())
        (out / f"{split}.en").write_text((tmp / f"{split}.yy").read_text())


@pytest.mark.parametrize("index", range(4))
def test_each_recipe_runs_from_a_config_folder_outside_the_repo(index, tmp_path, subprocess_env):
    ext = tmp_path / "my_ext"
    for name, body in files().items():
        (ext / name).parent.mkdir(parents=True, exist_ok=True)
        (ext / name).write_text(body, encoding="utf-8")
    data_dir = tmp_path / "data"
    fr_en_corpus(data_dir)
    command = commands()[index].replace("$EXT", str(ext))
    args = shlex.split(command)[3:]  # after `python -m emergence.train`
    if "data=fr_en" in args:
        args.append("data.vocab_size=100")  # the tiny corpus cannot support 8000 pieces
    env = {**subprocess_env, "PYTHONPATH": f"{ext}:{ROOT}", "EMERGENCE_DATA": str(data_dir), "WANDB_MODE": "disabled"}
    out = subprocess.run(
        [sys.executable, "-m", "emergence.train", *args, "logger=none", "trainer.progress=false"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("run.json")]
    assert len(records) == 1 and records[0]["status"] == "completed"
    config = records[0]["config"]
    if "init=scaled_normal" in args:
        assert config["init"]["_target_"] == "my_inits.ScaledNormal"
    if "arch=two_layer" in args:
        assert config["arch"]["_target_"] == "my_models.TwoLayer"
    if "data=rings" in args:
        assert config["data"]["reader"]["_target_"] == "my_data.read_rings"
    if "data=fr_en" in args:
        assert config["data"]["src_lang"] == "fr" and config["data"]["corpus_dir"] == str(data_dir / "fr_en")


def anchors(page) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens (code blocks skipped)."""
    text = BLOCK.sub("", page.read_text(encoding="utf-8"))
    heads = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_links_between_the_docs_resolve():
    docs = ROOT / "docs"
    pages = sorted(docs.glob("*.md"))
    assert {p.name for p in pages} >= {"README.md", "method.md", "gradinit.md", "environment.md", "extending.md"}
    checked = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([\w./-]*?)(?:#([\w-]+))?\)", text) + re.findall(
            r"docs/([\w-]+\.md)#([\w-]+)", text
        ):
            path = (docs / target) if target else page
            if target.startswith("http"):
                continue
            assert path.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in anchors(path), f"{page.name}: {target}#{anchor}"
            checked += 1
    assert checked >= 5
