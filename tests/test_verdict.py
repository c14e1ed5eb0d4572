"""The pre-registered verdict rule on synthetic runs with a known answer (emergence/report/{claims,verdict}.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from emergence.report import claims as cl
from emergence.report import verdict as vd

ROOT = Path(__file__).resolve().parent.parent
DOC = cl.load_claims(ROOT / "conf" / "claims.yaml")


def fake_run(init, seed, acc, status="completed", variant="", epochs_to_target=None, experiment="exp"):
    summary = {"val_acc_epoch1": acc, "epochs_to_target": epochs_to_target}
    record = {
        "labels": dict(experiment=experiment, arch="mlp", data="d", init=init, seed=seed, variant=variant),
        "status": status, "summary": summary if status != "failed" else {}, "config": {"trainer": {"epochs": 5}},
        "epochs": 5.0 if status == "completed" else 0.5, "wall_s": 10.0, "init_s": 1.0,
    }  # fmt: skip
    return cl.Run(Path(f"/runs/{init}/{seed}"), record)


def doc_with(*claims, min_pairs=5):
    doc = {"rule": {**DOC["rule"], "min_pairs": min_pairs}, "metrics": copy.deepcopy(DOC["metrics"]), "claims": []}
    for i, extra in enumerate(claims):
        doc["claims"].append({
            "id": f"c{i}", "kind": "claim", "text": "t", "source": "s", "metric": "acc_epoch1", "direction": "greater",
            "cells": {"experiment": "exp", "arch": "mlp"}, "treatment": {"init": "emergence"},
            "control": {"init": "kaiming"}, "delta": 0.5, "scale": "cpu", "paper": None, **extra,
        })  # fmt: skip
    return doc


def cells(shift, n=8, noise=0.002, seed=0):
    rng = np.random.default_rng(seed)
    base = 0.80 + rng.normal(0, 0.01, n)
    t = base + shift + rng.normal(0, noise, n)
    return [fake_run("kaiming", s, float(base[s])) for s in range(n)] + [
        fake_run("emergence", s, float(t[s])) for s in range(n)
    ]


def test_known_shift_is_supported_with_the_right_interval():
    (r,) = vd.evaluate(doc_with({}), cells(0.03))
    assert r["verdict"] == "supported" and len(r["pairs"]) == 8
    lo, hi = vd.interval(r["stats"], "hull")
    assert lo < r["stats"]["mean_diff"] < hi and 2.5 < lo and hi < 3.5  # the 3-point shift, in points of accuracy
    assert r["p_holm"] < 0.05


def balanced(spread, n=8):
    """Treatment = control +- spread, alternating: a mean difference of exactly 0."""
    base = 0.80 + 0.01 * np.sin(np.arange(n))
    runs = [fake_run("kaiming", s, float(base[s])) for s in range(n)]
    return runs + [fake_run("emergence", s, float(base[s] + spread * (-1) ** s)) for s in range(n)]


def test_no_shift_is_inconclusive_or_equivalent():
    (r,) = vd.evaluate(doc_with({}), balanced(0.002))
    assert abs(r["stats"]["mean_diff"]) < 1e-9
    assert r["verdict"] == "equivalent"  # +-0.2 points: the interval sits inside +-0.5
    (r,) = vd.evaluate(doc_with({}), balanced(0.01))
    assert r["verdict"] == "inconclusive"  # +-1 point: too wide for +-0.5, and it straddles 0


def test_verdict_flips_with_the_claimed_direction():
    runs = cells(0.03)
    (r,) = vd.evaluate(doc_with({"direction": "less"}), runs)
    assert r["verdict"] == "contradicted"
    (r,) = vd.evaluate(doc_with({}), cells(-0.03))
    assert r["verdict"] == "contradicted"


def test_too_few_seeds_and_not_run():
    (r,) = vd.evaluate(doc_with({}), cells(0.03, n=4))
    assert r["verdict"] == "too few seeds" and r["stats"]["n"] == 4  # statistics still shown
    (r,) = vd.evaluate(doc_with({}), [x for x in cells(0.03) if x.labels["init"] == "kaiming"])
    assert r["verdict"] == "not run"
    (r,) = vd.evaluate(doc_with({}), [])
    assert r["verdict"] == "not run"


def test_diverged_run_counts_as_a_loss_and_failed_run_is_counted_not_paired():
    runs = cells(0.03, n=6)
    runs[6] = fake_run("emergence", 0, None, status="diverged")  # treatment seed 0 diverged before epoch 1
    runs[7] = fake_run("emergence", 1, None, status="failed")  # treatment seed 1 crashed
    (r,) = vd.evaluate(doc_with({}), runs)
    seeds = {p["seed"]: p for p in r["pairs"]}
    assert sorted(seeds) == [0, 2, 3, 4, 5]  # the failed pair is out, the diverged one is in
    assert seeds[0]["t"] == 0.0 and seeds[0]["t_substituted"] and r["substituted"] == 1
    assert r["counts"]["treatment"] == {"completed": 4, "diverged": 1, "other": 1}
    assert r["stats"]["p_improve"] == pytest.approx(4 / 5)  # the diverged seed is a loss
    assert r["verdict"] == "inconclusive"  # one catastrophic loss blows up the interval


def test_unreached_target_gets_the_budget():
    runs = [fake_run("kaiming", s, 0.8, epochs_to_target=None) for s in range(5)]
    runs += [fake_run("emergence", s, 0.8, epochs_to_target=2.0 + 0.01 * s) for s in range(5)]
    (r,) = vd.evaluate(doc_with({"metric": "epochs_to_target", "direction": "less", "delta": 0.1}), runs)
    assert all(p["c"] == 5.0 and p["c_substituted"] for p in r["pairs"])  # never reached: the 5-epoch budget
    assert r["verdict"] == "supported"


def test_holm_runs_across_the_claims_of_one_report():
    runs = cells(0.03)
    doc = doc_with({}, {}, {})
    results = vd.evaluate(doc, runs)
    p = results[0]["p"]
    assert [r["p_holm"] for r in results] == pytest.approx([min(1, 3 * p)] * 3)


def test_variant_matching_wildcards_and_ignored_keys():
    run = fake_run("gradinit", 0, 0.8, variant="diagnostics.every_steps=3,init.iterations=78")
    ignore = DOC["rule"]["ignore_variant"]
    assert cl.matches(run, {"experiment": "exp"}, {"init": "gradinit", "variant": {"init.iterations": "*"}}, ignore)
    assert cl.matches(run, {}, {"init": "gradinit", "variant": {"init.iterations": 78}}, ignore)
    assert not cl.matches(run, {}, {"init": "gradinit"}, ignore)  # an unlisted variant key is another cell
    assert not cl.matches(run, {}, {"init": "gradinit", "variant": {"init.iterations": 5}}, ignore)
    lw = fake_run("kaiming", 0, 0.8, variant="optim.layerwise_lr={alpha:1.2599},init.inverse=True")
    assert lw.variant() == {"optim.layerwise_lr": {"alpha": 1.2599}, "init.inverse": True}


def test_duplicate_seeds_in_a_cell_are_not_paired_silently():
    runs = cells(0.03) + [fake_run("kaiming", 0, 0.5, experiment="exp")]
    (r,) = vd.evaluate(doc_with({}), runs)
    assert r["verdict"] == "not run" and "several runs for one seed" in r["note"]


def test_claims_file_entries_are_unique_and_checked(tmp_path):
    assert len({c["id"] for c in DOC["claims"]}) == len(DOC["claims"]) >= 20
    assert {c["kind"] for c in DOC["claims"]} == {"claim", "control"}
    assert DOC["rule"]["bootstrap_resamples"] >= 10_000 and DOC["rule"]["min_pairs"] == 5
    bad = tmp_path / "claims.yaml"
    bad.write_text("rule: {}\nmetrics: {}\nclaims: []\n")
    with pytest.raises(cl.ClaimsError, match="rule.confidence"):
        cl.load_claims(bad)
    with pytest.raises(cl.ClaimsError, match="not found"):
        cl.load_claims(tmp_path / "missing.yaml")


def test_a_tie_at_the_budget_measures_nothing():
    runs = [fake_run(init, s, 0.8, epochs_to_target=None) for init in ("kaiming", "emergence") for s in range(5)]
    (r,) = vd.evaluate(doc_with({"metric": "epochs_to_target", "direction": "less", "delta": 0.1}), runs)
    assert r["stats"]["mean_diff"] == 0.0 and r["verdict"] == "inconclusive"  # not "equivalent"
    assert "no run reached" in r["note"]
