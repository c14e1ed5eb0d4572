"""The profiles of experiments/*.sh (README "Results"), listed with DRY_RUN=1: which cells run, on which seeds, at which
LR; and the failures a user meets (unknown SCALE, no LR selection yet)."""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dry(scale: str, script: str = "run_all.sh", **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "DRY_RUN": "1", "SCALE": scale, "SMOKE": "0", **env}
    return subprocess.run(["bash", f"experiments/{script}"], cwd=ROOT, env=full, capture_output=True, text=True)


def runs(scale: str) -> list[dict]:
    out = dry(scale)
    assert out.returncode == 0, out.stderr
    parsed = []
    for line in out.stdout.splitlines():
        if "emergence.train" not in line:
            continue
        args = dict(re.findall(r"(\S+?)=(\S+)", line.split("emergence.train", 1)[1].replace("\\", "")))
        parsed.append(args)
    return parsed


def cells(parsed, selection: bool) -> dict:
    """{(experiment, arch, init, variant): [seeds]} of the reported runs or of the LR selection runs."""
    out = defaultdict(list)
    for r in parsed:
        if ("name" in r) != selection:
            continue
        variant = tuple(sorted((k, v) for k, v in r.items() if k not in ("experiment", "arch", "init", "seed",
                                                                        "optim.lr", "name", "data")))  # fmt: skip
        out[(r["experiment"], r.get("data", "-"), r["arch"], r["init"], variant)].append(r["seed"])
    return out


def test_cpu_profile_gives_every_mlp_cell_ten_seeds_and_a_selected_lr():
    parsed = runs("cpu")
    reported, selection = cells(parsed, False), cells(parsed, True)
    assert {k[1:4] for k in reported} == {("-", "mlp", i) for i in
                                          ("torch_default", "xavier", "kaiming", "gradinit", "emergence")}  # fmt: skip
    for key, seeds in reported.items():
        assert sorted(seeds, key=int) == [str(s) for s in range(10)], key
    for r in parsed:
        assert r["optim.lr"] == "SELECTED" or "name" in r  # the reported runs read the selection table
    tuned = {k for k in reported if not any(v[0].startswith(("init.max_factor", "init.alpha", "init.turning_point"))
                                            for v in k[4])}  # fmt: skip
    assert tuned == set(selection)  # every tuned cell (baselines and controls) has its LR grid
    lrs = defaultdict(set)
    for r in parsed:
        if "name" in r:
            lrs[r["init"]].add(r["optim.lr"])
            assert r["seed"] in ("100", "101") and r["name"] == "lr_mlp_fashion_mnist"
    assert all(v == {"0.01", "0.02", "0.04"} for v in lrs.values())  # {0.5, 1, 2} x the CPU centre 0.02
    variants = {dict(k[4]).get("init.inverse") or next(iter(dict(k[4])), "") for k in reported}
    assert {"true", "optim.layerwise_lr", "schedule.warmup_epochs"} <= variants
    ablations = [k for k in reported if any(v[0].startswith(("init.max_factor", "init.alpha")) for v in k[4])]
    turning = [k for k in reported if any(v[0] == "init.turning_point" for v in k[4])]
    assert len(ablations) >= 2 and len(turning) >= 2  # with the default, >= 3 alphas; 2 turning points


def test_cpu_full_profile_covers_every_claim_variant():
    reported = cells(runs("cpu-full"), False)
    archs = {(k[0], k[2]) for k in reported}
    assert {("mlp_fashion_mnist", "mlp"), ("mlp_fashion_mnist", "mlp_bn"), ("cnn_fashion_mnist", "vgg19"),
            ("cnn_fashion_mnist", "vgg19_nobn"), ("cnn_fashion_mnist", "resnet20"),
            ("cnn_fashion_mnist", "resnet20_nobn"), ("translation_gettext", "transformer_tiny")} <= archs  # fmt: skip
    for key, seeds in reported.items():
        assert len(seeds) >= (10 if key[2].startswith("mlp") else 5), key
    translation = {k[3] for k in reported if k[0] == "translation_gettext"}
    # torch_default: MLPs only on CPU (3-hour budget); t_fixup: the initializers beyond the paper (more_inits.sh)
    assert translation == {"xavier", "fairseq_default", "emergence", "t_fixup"}
    mlp_inits = {k[3] for k in reported if (k[0], k[2]) == ("mlp_fashion_mnist", "mlp") and not k[4]}
    assert {"orthogonal", "lsuv", "metainit"} <= mlp_inits
    fixup = [k for k in reported if k[3] == "fixup"]
    assert [k[2] for k in fixup] == ["resnet20_nobn"]
    assert {v[0] for v in fixup[0][4]} == {"arch.fixup", "optim.bias_scale_lr"}  # its own architecture and scalar LR
    assert {k[3] for k in reported if k[0] == "cnn_fashion_mnist" and all(v[0] == "init.iterations" for v in k[4])} == {
        "xavier", "kaiming", "gradinit", "emergence", "classifier_good", "classifier_medium", "classifier_low"}
    assert {k[2] for k in reported if k[3].startswith("classifier_")} == {"vgg19_head3_nobn"}
    vgg_controls = {v for k in reported if k[2] == "vgg19_nobn" for v in k[4]}
    assert {v[0] for v in vgg_controls} >= {"optim.layerwise_lr", "schedule.warmup_epochs", "init.inverse",
                                            "init.turning_point"}  # fmt: skip


def test_paper_profile_runs_multiruns_on_the_paper_protocol():
    out = dry("paper")
    assert out.returncode == 0, out.stderr
    lines = [line.replace("\\", "") for line in out.stdout.splitlines() if "emergence.train" in line]
    assert all(" -m " in line for line in lines)
    assert any("experiment=cifar10_paper" in line and "arch=resnet110_nobn" in line for line in lines)
    assert any("experiment=iwslt14_paper" in line and "init=fairseq_default" in line for line in lines)
    assert any("seed=0,1,2,3,4,5,6,7,8,9" in line and "experiment=mlp_paper" in line for line in lines)


def test_unknown_scale_and_missing_selection_are_clear_errors(tmp_path):
    bad = dry("gpu")
    assert bad.returncode == 2 and "SCALE must be cpu, cpu-full or paper" in bad.stderr
    missing = dry("cpu", "mlp.sh", DRY_RUN="0", LR_TABLE=str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "run experiments/lr_select.sh first" in missing.stderr
