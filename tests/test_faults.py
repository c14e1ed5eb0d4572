"""Faults that must end with a clear message and nothing lost: metrics files cut short or deleted, a foreign
checkpoint, two processes on one run dir, moved or changed data, long run-dir names, failed sweep jobs, a full disk,
an unreachable W&B server, bad config values (issue 10)."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emergence import checkpoint
from emergence.config import RESULT_NEUTRAL, ConfigError, config_fingerprint, naming_overrides, run_dir_name
from emergence.log import read_metrics
from emergence.runinfo import labels_from_hydra
from emergence.tasks.classification import ClassificationTask
from emergence.train import run
from tests.conftest import ROOT, compose_train

PREEMPTIBLE = ["arch=mlp", "init=emergence", "trainer.epochs=3", "trainer.eval_every_steps=4",
               "diagnostics.every_steps=3", "trainer.checkpoint_every_steps=5", "optim.lr=0.05"]  # fmt: skip


def untimed(path):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(path)]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def preempt_at(monkeypatch, n: int):
    """Make the n-th training step of this process send SIGTERM (the run checkpoints and stops)."""
    original, calls = ClassificationTask.loss, {"n": 0}

    def loss(self, model, batch):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, model, batch)

    monkeypatch.setattr(ClassificationTask, "loss", loss)
    return original


def interrupted(make_cfg, monkeypatch, *overrides, name="run", at=37):
    """A run stopped by SIGTERM mid-epoch 2 (28 steps per epoch), with its checkpoint."""
    cfg = make_cfg(*PREEMPTIBLE, *overrides, run=name)
    original = preempt_at(monkeypatch, at)
    with pytest.raises(checkpoint.Preempted):
        run(cfg)
    monkeypatch.setattr(ClassificationTask, "loss", original)
    return cfg


# ---- 2, 3: metrics.jsonl cut short or deleted while a checkpoint exists ------------------------------------------
@pytest.mark.parametrize("damage", ["shorter", "deleted"])
def test_metrics_file_shorter_than_the_checkpoint_or_deleted_is_restored(damage, make_cfg, tmp_path, monkeypatch):
    reference = run(make_cfg(*PREEMPTIBLE, run="reference"))
    cfg = interrupted(make_cfg, monkeypatch)
    metrics = tmp_path / "run" / "metrics.jsonl"
    if damage == "shorter":  # the file lost its tail (not fsynced before a crash)
        data = metrics.read_bytes()
        metrics.write_bytes(data[: len(data) // 3])
    else:
        metrics.unlink()
    resumed = run(cfg)
    assert resumed["status"] == "completed"
    assert b"\0" not in metrics.read_bytes()
    assert untimed(metrics) == untimed(tmp_path / "reference" / "metrics.jsonl")  # every record, none twice
    assert resumed["summary"] == {**reference["summary"], "wall_s_to_target": resumed["summary"]["wall_s_to_target"]}


def test_checkpoint_holds_the_fsynced_records(make_cfg, tmp_path, monkeypatch):
    interrupted(make_cfg, monkeypatch)
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    on_disk = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    assert state["metrics"] == on_disk[: state["metrics_bytes"]] and len(state["metrics"]) == state["metrics_bytes"]


# ---- 4: a checkpoint of another configuration is refused -----------------------------------------------------------
def test_checkpoint_with_another_fingerprint_is_refused_and_nothing_changes(make_cfg, tmp_path, monkeypatch):
    interrupted(make_cfg, monkeypatch, "optim.lr=0.05", name="a")
    cfg_b = interrupted(make_cfg, monkeypatch, "optim.lr=0.01", name="b")
    shutil.copy(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")  # same shapes, other lr
    before = files(tmp_path / "b")
    with pytest.raises(ConfigError, match="checkpoint.pt was written by a different configuration"):
        run(cfg_b)
    assert files(tmp_path / "b") == before


# ---- 5: one process per run dir -----------------------------------------------------------------------------------
def test_a_run_dir_in_use_is_refused_at_once_and_untouched(make_cfg, tmp_path, monkeypatch):
    cfg = interrupted(make_cfg, monkeypatch)
    before = files(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from emergence import checkpoint\n"
         "with checkpoint.lock_run_dir(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)",
         str(tmp_path / "run")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(checkpoint.RunDirBusy, match=rf"run dir .*run is in use by pid {holder.pid}"):
            run(cfg)
        assert time.monotonic() - t0 < 5
        assert {k: v for k, v in files(tmp_path / "run").items() if k != "run.lock"} == {
            k: v for k, v in before.items() if k != "run.lock"
        }
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder leaves no stale lock
        holder.wait()
    assert run(cfg)["status"] == "completed"


def test_two_identical_commands_started_together_train_once(subprocess_env, tmp_path):
    args = [sys.executable, "-m", "emergence.train", "arch=mlp", "init=emergence", "data=digits", "logger=none",
            "arch.depth=2", "arch.width=64", "trainer.epochs=3", "trainer.batch_size=64", "trainer.progress=false"]
    procs = [subprocess.Popen(args, env=subprocess_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]  # fmt: skip
    outs = [(p.wait(timeout=300), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in outs)
    assert codes in ([0, 0], [0, 2]), outs
    if codes == [0, 2]:
        assert any("is in use by pid" in text for code, text in outs if code == 2)
    else:  # the second one started after the first finished
        assert any("skipping" in text for _, text in outs)
    run_dir = next(tmp_path.rglob("run.json")).parent
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    evaluations = [r["epoch"] for r in read_metrics(run_dir / "metrics.jsonl") if "val/acc" in r]
    assert evaluations == [0, 1, 2, 3]  # one writer: every evaluation once, in order


# ---- 6: one list of result-neutral keys ---------------------------------------------------------------------------
NEUTRAL_OVERRIDES = ["data.root=/elsewhere/data", "paths.data_dir=/x", "logger=wandb",
                     "trainer.device=cpu", "trainer.progress=true", "trainer.checkpoint_minutes=5",
                     "trainer.checkpoint_every_steps=3", "trainer.keep_checkpoint=true", "force=true"]  # fmt: skip


@pytest.mark.parametrize("override", NEUTRAL_OVERRIDES)
def test_result_neutral_keys_change_neither_fingerprint_nor_name_nor_variant(override, tmp_path):
    assert any(override.split("=")[0] == k or override.startswith(k + ".") for k in RESULT_NEUTRAL)
    base = ["arch=mlp", "init=emergence", "data=synthetic", "optim.lr=0.1"]
    plain, moved = (compose_train([*base, *extra], tmp_path) for extra in ([], [override]))
    assert config_fingerprint(plain) == config_fingerprint(moved)
    name = "arch=mlp,data=synthetic,init=emergence,optim.lr=0.1"
    assert run_dir_name([*base, override]) == run_dir_name(base) == name
    assert labels_from_hydra(moved)["variant"] == "optim.lr=0.1"  # variant derives from the same list


def test_a_changed_reader_keeps_the_fingerprint_but_other_data_read_is_refused(make_cfg, tmp_path):
    """data.reader is result-neutral because the data identity pins what it read: a reader that reads other arrays
    (here: synthetic blobs of another shape) leaves the fingerprint alone and is refused by the data identity."""
    base = ["arch=mlp", "init=xavier"]
    cfg, other = make_cfg(*base), make_cfg(*base, "data.reader.n_train=1024")
    assert config_fingerprint(cfg) == config_fingerprint(other)
    assert run(cfg)["status"] == "completed"
    before = files(tmp_path / "run")
    with pytest.raises(ConfigError, match="the data changed since .* was run"):
        run(other)
    assert files(tmp_path / "run") == before


def test_result_changing_keys_change_fingerprint_and_name(tmp_path):
    base = ["arch=mlp", "init=emergence", "data=synthetic"]
    for override in ("optim.lr=0.1", "trainer.epochs=7", "data.val_size=100", "trainer.cpu_threads=2"):
        assert config_fingerprint(compose_train([*base, override], tmp_path)) != config_fingerprint(
            compose_train(base, tmp_path)
        ), override
        assert override in run_dir_name([*base, override])


def test_hydra_exclusions_are_derived_from_the_one_list():
    text = (ROOT / "conf/hydra/default.yaml").read_text()
    assert "exclude_keys" not in text and text.count("emergence.run_dir_name") == 2
    assert naming_overrides(["seed=3", "name=x", "experiment=y", "+paths.root=/a", "arch=mlp"]) == ["arch=mlp"]


def test_moving_the_data_folder_keeps_finished_runs(make_cfg, tmp_path):
    first = run(make_cfg("arch=mlp", "init=xavier", "data.root=/data/on/node1"))
    again = run(make_cfg("arch=mlp", "init=xavier", "data.root=/scratch/node2/data"))  # node-local data elsewhere
    assert again == first  # skipped as finished, not refused as foreign


# ---- 7: the data's contents are part of a run's identity -----------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, seed: int = 0) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", 400), ("t10k", 100)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return raw


def test_changed_image_files_make_a_finished_run_foreign(make_cfg, tmp_path):
    raw = fake_mnist(tmp_path / "data")
    overrides = ["arch=mlp", "init=xavier", "data=mnist", f"data.root={tmp_path / 'data'}", "data.val_size=100"]
    run(make_cfg(*overrides))
    assert run(make_cfg(*overrides))["status"] == "completed"  # same data: skipped
    images = raw / "train-images-idx3-ubyte.gz"
    data = bytearray(gzip.decompress(images.read_bytes()))
    data[-1] ^= 0xFF  # one pixel of one training image
    images.write_bytes(gzip.compress(bytes(data)))
    before = files(tmp_path / "run")
    with pytest.raises(ConfigError, match="the data changed since .* was run"):
        run(make_cfg(*overrides))
    assert files(tmp_path / "run") == before


def test_changed_corpus_makes_a_finished_run_foreign(make_cfg, tmp_path):
    from tests.test_translation_task import corpus_overrides, write_corpus

    corpus = write_corpus(tmp_path / "xx_yy", n_train=120, n_eval=10)
    overrides = [*corpus_overrides(tmp_path, corpus), "arch=transformer_tiny", "init=xavier", "data.max_tokens=512",
                 "data.beam=1", "trainer.epochs=1", "measure.probe_size=8", "diagnostics.every_steps=0"]  # fmt: skip
    record = run(make_cfg(*overrides, small=False))
    assert record["status"] == "completed" and record["data_identity"]
    with open(corpus / "train.xx", "a", encoding="utf-8") as f:  # rebuild the corpus: one more pair
        f.write("ka .\n")
    with open(corpus / "train.yy", "a", encoding="utf-8") as f:
        f.write("ke .\n")
    before = files(tmp_path / "run")
    with pytest.raises(ConfigError, match="the data changed"):
        run(make_cfg(*overrides, small=False))
    assert files(tmp_path / "run") == before


# ---- 8: bounded run-dir names, never nested -------------------------------------------------------------------------
def test_run_dir_names_are_bounded_and_flat():
    many = [f"optim.some_long_option_{i:02d}=0.{i}23456789012345" for i in range(12)]
    name = run_dir_name(many)
    assert len(name.encode()) <= 160 and "/" not in name
    kept, digest = name.rsplit(",", 1)
    assert kept.split(",") == many[: len(kept.split(","))] and digest.startswith("~")  # whole overrides, then a hash
    assert run_dir_name(["x=" + "a" * 400]).startswith("x=aaa") and len(run_dir_name(["x=" + "a" * 400])) <= 160
    assert run_dir_name(many) == name and run_dir_name(many[:-1]) != name  # deterministic, distinct
    assert "/" not in run_dir_name(["init.base._target_=a/b/c"])


def test_ten_overrides_and_an_absolute_path_give_one_readable_level(subprocess_env, tmp_path):
    overrides = ["optim.lr=0.0123456789", "optim.momentum=0.912345678", "optim.weight_decay=0.000123456789",
                 "optim.nesterov=true", "schedule=cosine", "schedule.min_lr_factor=0.00012345", "arch.depth=2",
                 "arch.width=16", "measure.probe_size=64", "measure.threshold=0.0512345", "diagnostics.every_steps=0",
                 "trainer.max_steps=3", f"data.root={tmp_path}/some/absolute/folder"]  # fmt: skip
    cmd = [sys.executable, "-m", "emergence.train", "arch=mlp", "init=xavier", "data=synthetic", "logger=none",
           "trainer.epochs=1", *overrides]  # fmt: skip
    out = subprocess.run(cmd, env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_json,) = (tmp_path / "runs").rglob("run.json")
    rel = run_json.parent.relative_to(tmp_path / "runs")
    assert len(rel.parts) == 3 and rel.parts[0] == "default" and rel.parts[2] == "seed=0"
    assert len(rel.parts[1]) <= 160 and rel.parts[1].startswith("arch.depth=2,arch.width=16,arch=mlp")


# ---- 9: a failed job does not stop a sweep ------------------------------------------------------------------------
def test_a_failing_job_fails_alone_and_the_sweep_exit_code_counts_it(subprocess_env, tmp_path):
    cmd = [sys.executable, "-m", "emergence.train", "-m", "arch=mlp", "init=emergence", "init.alpha=1.2,-1,1.5",
           "data=synthetic", "logger=none", "trainer.epochs=1", "arch.depth=2", "arch.width=16", "name=bad_sweep"]
    out = subprocess.run(cmd, env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "1 job(s) of this sweep failed" in out.stderr and "init.alpha=-1" in out.stderr
    done = {json.loads(p.read_text())["config"]["init"]["alpha"]: json.loads(p.read_text())["status"]
            for p in (tmp_path / "runs" / "bad_sweep").rglob("run.json")}  # fmt: skip
    assert done == {1.2: "completed", 1.5: "completed"}  # alpha = 1.5 ran after the bad job
    (record,) = (tmp_path / "runs" / "bad_sweep" / ".sweeps").glob("*/job*.json")
    failure = json.loads(record.read_text())
    assert failure["exit_code"] == 2 and "init.alpha=-1" in failure["error"]
    agg = subprocess.run([sys.executable, "scripts/aggregate.py", "--runs", str(tmp_path / "runs"), "--out",
                          str(tmp_path / "results")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert agg.returncode == 0, agg.stderr
    table = (tmp_path / "results" / "bad_sweep.md").read_text()
    assert "Jobs that failed" in table and "init.alpha=-1" in table


# ---- 10: full disk ------------------------------------------------------------------------------------------------
def test_full_disk_during_a_checkpoint_write_says_so_and_loses_nothing(make_cfg, tmp_path, monkeypatch):
    import torch

    cfg = make_cfg(*PREEMPTIBLE)
    real_save, calls = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third checkpoint: half written, then the disk is full
            f.write(b"x" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(checkpoint.DiskFull) as info:
        run(cfg)
    message = str(info.value)
    assert "no space left on the device holding" in message and str(tmp_path / "run") in message
    assert "nothing written before this point was lost; free space and rerun" in message
    run_dir = tmp_path / "run"
    assert not (run_dir / "checkpoint.pt.tmp").exists()
    assert checkpoint.load(run_dir / "checkpoint.pt")["loop"]["step"] == 10  # the previous checkpoint is intact
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "failed" and "no space left" in status["error"]
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert run(cfg)["status"] == "completed"  # rerun resumes


def test_full_disk_on_the_command_line_is_one_line(subprocess_env, tmp_path):
    code = ("import errno, sys, torch\nfrom emergence import checkpoint\n"
            "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "checkpoint.torch.save = full\nimport runpy\nsys.argv = ['x', *sys.argv[1:]]\n"
            "runpy.run_module('emergence.train', run_name='__main__')")  # fmt: skip
    cmd = [sys.executable, "-c", code, "arch=mlp", "init=xavier", "data=synthetic", "logger=none", "trainer.epochs=2"]
    out = subprocess.run(cmd, env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "Traceback" not in text and "no space left on the device holding" in text
    assert json.loads(next(tmp_path.rglob("run.json")).read_text())["status"] == "failed"
    assert not list(tmp_path.rglob("*.tmp"))


# ---- 11: W&B online but unreachable -------------------------------------------------------------------------------
def _blackhole():
    """A loopback server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_unreachable_wandb_warns_and_the_run_goes_on_offline(server, make_cfg, tmp_path, monkeypatch, caplog):
    listener = _blackhole() if server == "silent" else None
    port = listener.getsockname()[1] if listener else 9  # port 9 on the loopback: connection refused
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("HOME", str(tmp_path))
    t0 = time.monotonic()
    try:
        record = run(make_cfg("arch=mlp", "init=xavier", "logger=wandb", "logger.mode=online",
                              "logger.init_timeout_s=3"))  # fmt: skip
    finally:
        if listener:
            listener.close()
    assert record["status"] == "completed"
    assert time.monotonic() - t0 < 60
    assert "W&B is not reachable within logger.init_timeout_s=3 s" in caplog.text
    assert sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))


# ---- 12: every bad value exits 2 with one line naming the key -------------------------------------------------------
@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.lr=inf", "optim.lr"),
        ("trainer.diverge_grad_norm=-1", "trainer.diverge_grad_norm"),
        ("init.alpha=inf", "init.alpha"),
        ("+init.foo=1", "init.foo"),
        ("init.alpah=1.2", "init.alpah"),
        ("data.train_subset=0", "data.train_subset"),
        ("trainer.batch_size=100000", "trainer.batch_size"),
        ("arch=nope", "arch/nope"),
    ],
)
def test_bad_values_exit_2_with_one_line_naming_the_key(override, key, subprocess_env, tmp_path):
    cmd = [sys.executable, "-m", "emergence.train", "arch=mlp", "init=emergence", "data=synthetic", "logger=none",
           override]  # fmt: skip
    out = subprocess.run(cmd, env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == 2, lines
    assert "Traceback" not in out.stderr
    assert len(lines) == 1 and key in lines[0] and "error" in lines[0], lines
    assert not list(tmp_path.rglob("metrics.jsonl"))


# ---- 13: translation data --------------------------------------------------------------------------------------------
def test_translation_subsets_are_seeded_draws_not_the_first_lines(tmp_path):
    from emergence.data.translation import TranslationData
    from tests.test_translation_task import write_corpus

    corpus = write_corpus(tmp_path / "c", n_train=200, n_eval=10)
    data = TranslationData.from_corpus(corpus, "xx", "yy", 100, True, tmp_path / "cache")
    data.restrict("train", 50)
    ids = data.ids("train").tolist()
    assert len(ids) == 50 and ids != list(range(50)) and ids == sorted(ids) and max(ids) > 150
    again = TranslationData.from_corpus(corpus, "xx", "yy", 100, True, tmp_path / "cache")
    again.restrict("train", 50)
    assert again.ids("train").tolist() == ids  # the same subset for every run


def test_one_encoded_cache_per_corpus_and_tokenizer(tmp_path):
    from emergence.data.translation import TranslationData
    from tests.test_translation_task import write_corpus

    corpus = write_corpus(tmp_path / "c", n_train=100, n_eval=10)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "encoded.xx-yy.0123456789abcdef.pt").write_bytes(b"old")  # the old naming
    for seed in range(3):  # the corpus is rebuilt three times
        write_corpus(corpus, n_train=100, n_eval=10, seed=seed)
        TranslationData.from_corpus(corpus, "xx", "yy", 100, True, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("encoded.*.pt"))) == 1
    TranslationData.from_corpus(corpus, "xx", "yy", 120, True, tmp_path / "cache")  # another tokenizer: kept apart
    assert len(list((tmp_path / "cache").glob("encoded.*.pt"))) == 2


def test_a_run_failing_while_loading_data_records_failed(make_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist not found"):
        run(make_cfg("arch=mlp", "init=xavier", "data=mnist", f"data.root={tmp_path}/nowhere"))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and "mnist not found" in info["error"]


def test_empty_corpus_dir_is_a_config_error(make_cfg):
    with pytest.raises(ConfigError, match="data.corpus_dir=''"):
        run(make_cfg("arch=transformer_tiny", "init=xavier", "data=ding_de_en", "data.corpus_dir=", small=False))


def test_run_dirs_written_under_the_former_fingerprint_are_still_recognized(make_cfg, tmp_path, monkeypatch):
    from emergence.config import LEGACY_NEUTRAL

    cfg = interrupted(make_cfg, monkeypatch)
    legacy = config_fingerprint(cfg, LEGACY_NEUTRAL)
    assert legacy != config_fingerprint(cfg)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").write_text(json.dumps({**info, "fingerprint": legacy}))
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    checkpoint.save_atomic({**state, "fingerprint": legacy}, tmp_path / "run" / "checkpoint.pt")
    assert run(cfg)["status"] == "completed"


def old_form(config: dict, exponent_rule: str | None = None) -> dict:
    """``config`` as the code before the rename wrote it: the emergence init's ``exponent_rule`` key named ``exponent``
    (written out by hand here, not with config.LEGACY_FORMS)."""
    old = json.loads(json.dumps(config))
    init = old["init"]
    init = {("exponent" if k == "exponent_rule" else k): v for k, v in init.items()}
    if exponent_rule is not None:
        init["exponent"] = exponent_rule
    return {**old, "init": init}


@pytest.mark.parametrize("recorded", ["same", "other"])
def test_run_dir_written_before_the_exponent_rule_rename(recorded, make_cfg, tmp_path, caplog):
    from omegaconf import OmegaConf

    cfg = make_cfg("arch=mlp", "init=emergence")
    done = run(cfg)
    assert done["status"] == "completed" and done["config"]["init"]["exponent_rule"] == "symmetric"
    old = old_form(done["config"], None if recorded == "same" else "pivot")  # "other": a different configuration
    assert "exponent_rule" not in old["init"] and "exponent" in old["init"]
    path = tmp_path / "run" / "run.json"
    path.write_text(json.dumps({**done, "config": old, "fingerprint": config_fingerprint(OmegaConf.create(old))}))
    before = {name: (tmp_path / "run" / name).read_bytes() for name in ("run.json", "metrics.jsonl")}
    if recorded == "other":
        with pytest.raises(checkpoint.ForeignRun, match="different configuration"):
            run(cfg)
    else:
        with caplog.at_level("INFO", logger="emergence"):
            again = run(cfg)
        assert again["config"]["init"]["exponent"] == "symmetric"  # skipped: the old record is returned as it was
        assert "recognised a run written before init.exponent was renamed init.exponent_rule" in caplog.text
    assert {name: (tmp_path / "run" / name).read_bytes() for name in before} == before  # nothing rewritten, no training
