"""Every benchmark runs at smoke size (exit 0, its table printed, its JSON written), so none can rot unseen; the GPU
check runs on the CPU; ``make bench``'s report is written. Plus the runner's hot path: measuring the gradient norm for
the divergence check leaves training bit-identical, and both divergence branches still fire.

Figures are not asserted here (speed is measured by the scripts, docs/benchmarks.md), only that they are produced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from emergence.train import run
from tests.conftest import ROOT

BENCHES = ["augment", "checkpoint", "gradinit", "measure", "runner", "transformer", "translation"]


def bench(module: str, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", f"scripts.bench.{module}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


@pytest.mark.parametrize("name", BENCHES)
def test_every_benchmark_runs_at_smoke_size(name, tmp_path):
    proc = bench(name, "--smoke", "--json", str(tmp_path / "out.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "### " in proc.stdout and "|---|" in proc.stdout and "Machine: " in proc.stdout, proc.stdout
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["rows"] and all(len(r) == len(record["columns"]) for r in record["rows"])
    assert record["machine"]["torch_threads"] >= 1 and record["machine"]["commit"]
    if name == "gradinit":  # no --official: the comparison is skipped and says so
        assert "official comparison skipped" in proc.stdout


def test_gradinit_benchmark_refuses_a_wrong_official_path(tmp_path):
    proc = bench("gradinit", "--smoke", "--official", str(tmp_path))
    assert proc.returncode == 2 and "gradinit_utils.py" in proc.stderr


@pytest.mark.skipif(not os.environ.get("EMERGENCE_GRADINIT_OFFICIAL"), reason="set EMERGENCE_GRADINIT_OFFICIAL to a "
                    "clone of github.com/zhuchen03/gradinit")  # fmt: skip
def test_gradinit_benchmark_against_the_official_code(tmp_path):
    proc = bench("gradinit", "--smoke", "--official", os.environ["EMERGENCE_GRADINIT_OFFICIAL"], "--json",
                 str(tmp_path / "g.json"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ratios = json.loads((tmp_path / "g.json").read_text())["ratios"]
    assert ratios and all(r["objective"] > 0 and r["constraint"] > 0 for r in ratios.values())


def test_bench_all_writes_the_report_with_commit_and_machine(tmp_path):
    out = tmp_path / "bench.md"
    proc = bench("all", "--smoke", "--only", "measure", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:]
    text = out.read_text()
    assert "at commit " in text and "cores" in text and "## measure" in text and "| emergence measure |" in text


def test_gpu_check_runs_on_the_cpu(tmp_path):
    proc = bench("gpu_check", "--device", "cpu", "--smoke", "--out", str(tmp_path))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    smoke = result["cli_smoke"]
    assert set(smoke) == {"images", "images_gradinit", "text", "text_gradinit"}
    assert all(v["rc"] == 0 and v["runs"] > 0 and not v["not_completed"] for v in smoke.values())
    agreement = result["agreement"]["runs"]
    assert len(agreement) == 3 and all(v["ok"] for v in agreement.values())  # 2 image archs + the Transformer
    assert all(v > 0 for v in result["throughput"]["images_per_s"].values())
    assert result["throughput"]["transformer"]["tiny"]["flops_per_token"] > 0
    assert set(result["concurrency_resnet20"]) == {"1", "2"}
    assert result["projection"]["gpu_hours_total"] > 0
    assert "## throughput" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_check_without_cuda_says_what_to_do(tmp_path):
    proc = bench("gpu_check", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--device cpu --smoke" in proc.stderr


def _metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]


def test_divergence_check_leaves_training_bit_identical(make_cfg, tmp_path):
    run(make_cfg("arch=mlp", "init=kaiming", "trainer.diverge_grad_norm=1e6", run="with_check"))
    run(make_cfg("arch=mlp", "init=kaiming", "trainer.diverge_grad_norm=null", run="without_check"))
    assert _metrics(tmp_path / "with_check") == _metrics(tmp_path / "without_check")


@pytest.mark.parametrize("clip", ["null", "1.0"])
def test_gradient_norm_divergence_fires_with_and_without_clipping(make_cfg, clip):
    record = run(make_cfg("arch=mlp", "init=kaiming", "trainer.diverge_grad_norm=1e-9", f"trainer.grad_clip={clip}"))
    assert record["status"] == "diverged" and record["diverged_at"] == 0


def test_translation_benchmark_times_at_most_one_epoch(tmp_path):
    """More --steps than the corpus has batches used to end the runner early and fail its step-count check."""
    proc = bench("translation", "--steps", "10000", "--repeats", "1", "--corpus", str(tmp_path / "none"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "batches per epoch; timing that many steps, not 10000" in proc.stdout
