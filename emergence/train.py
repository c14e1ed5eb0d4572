"""Hydra entry point: ``python -m emergence.train arch=mlp init=emergence data=fashion_mnist seed=0``.

``run(cfg)`` reads top to bottom: check the config -> lock the run dir (one process per run dir) -> decide: refuse a
foreign run dir, skip a finished run, or resume an interrupted one from its checkpoint -> seed streams -> data and its
identity (a run made on other data is refused) -> model -> init (timed) -> optimizer and schedule -> train/eval loop
-> test evaluation -> ``run.json``. The pieces it assembles live in ``emergence/components.py``; the decisions and
checkpoint files in ``emergence/checkpoint.py``.
Everything is written into the run dir, which is derived from the experiment, the overrides that matter and the seed
(conf/hydra/default.yaml), so a rerun of a sweep finds and skips its finished runs (``force=true`` reruns them).
``main`` maps errors to exit codes (2: configuration, refused or busy run dir; 1: missing data, corrupt checkpoint,
failed write); in a multirun a failed job is recorded and the sweep goes on (``runinfo.SweepReport``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import hydra
import torch
from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf

from emergence import checkpoint, loop, seeding
from emergence.components import (
    as_config_error,
    auto,
    build,
    data_identity,
    diagnostics,
    get_rng,
    initialize,
    measurer,
    record_failure,
    resolve_device,
    set_aside,
    set_rng,
)
from emergence.config import LEGACY_NEUTRAL, ConfigError, config_fingerprint, validate
from emergence.log import RunLogger
from emergence.runinfo import (
    environment_info,
    labels_from_hydra,
    record_sweep_failure,
    summarize,
    summary_key,
    sweep_folder,
    write_json,
)

log = logging.getLogger("emergence")


def run(cfg: DictConfig) -> dict:
    """Train and evaluate one configuration; returns the run summary (also written to ``run.json``)."""
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.lock_run_dir(run_dir):  # one process per run dir (a second one stops with RunDirBusy)
        return _run(cfg, run_dir)


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    fingerprint = config_fingerprint(cfg)
    ckpt_path = run_dir / "checkpoint.pt"
    labels = labels_from_hydra(cfg)
    info = {"fingerprint": fingerprint, "labels": labels, "config": OmegaConf.to_container(cfg, resolve=True)}

    # a finished run is skipped, an interrupted one resumes from its checkpoint, a foreign run dir is refused
    legacy = config_fingerprint(cfg, LEGACY_NEUTRAL)  # run dirs written before data identity are still ours
    previous, resume = checkpoint.decide(run_dir, fingerprint, cfg.force, legacy)  # refusals change nothing

    # seeds: separate streams so the init never changes the data order (emergence/seeding.py)
    seeding.make_deterministic()
    if cfg.trainer.get("cpu_threads"):
        torch.set_num_threads(int(cfg.trainer.cpu_threads))
    seed = int(cfg.seed)
    device = resolve_device(cfg.trainer.device)

    # data, and its identity (a content hash): a run made on other data is refused
    try:
        task = build("data", cfg.data).setup(device)
        steps_per_epoch = task.steps_per_epoch(cfg.trainer.batch_size)
    except Exception as exc:
        if previous is None or previous.get("status") not in checkpoint.FINISHED:
            record_failure(run_dir, info, exc)  # a run dir never stays without run.json
        raise as_config_error(exc) from exc
    info["data_identity"] = data_identity(task)
    checkpoint.check_data(run_dir, info["data_identity"], previous, resume)
    if previous is not None and previous.get("status") in checkpoint.FINISHED:
        log.info("skipping %s: already %s (force=true reruns it)", run_dir, previous["status"])
        return previous
    if resume is None:
        set_aside(run_dir / "metrics.jsonl")  # an earlier unfinished attempt is kept, never overwritten
        ckpt_path.unlink(missing_ok=True)  # only reachable with force=true: the old run is being replaced
    else:
        log.info("resuming %s at step %d (epoch %d)", run_dir, resume["loop"]["step"], resume["loop"]["epoch"])
        checkpoint.restore_metrics(run_dir / "metrics.jsonl", resume)
    task.run_dir = run_dir  # where a task may write samples (translations)

    # model (built and initialized on the CPU, so the same seed gives the same weights on any device)
    torch.manual_seed(seeding.stream_seed(seed, "model"))
    model = build("arch", cfg.arch, **task.model_kwargs())
    example = tuple(t.cpu() for t in task.example_inputs())

    # init (timed; a data-dependent init such as GradInit is cached in the run dir and reused on a rerun)
    initializer = build("init", cfg.init)
    if resume is None:
        key = f"{fingerprint}-{info['data_identity']}"  # the learned init depends on the data too
        init_stats, init_s = initialize(initializer, model, example, task, seed, device, run_dir, key, not cfg.force)
    else:
        init_stats, init_s = resume["init_stats"], resume["init_s"]
    model.to(device)
    if resume is None and getattr(initializer, "history", None):
        with open(run_dir / "init_history.jsonl", "w", encoding="utf-8") as f:  # GradInit's per-iteration record
            f.writelines(json.dumps(r, default=float) + "\n" for r in initializer.history)
    n_params = sum(p.numel() for p in model.parameters())
    if auto(cfg.trainer.channels_last, device) and len(getattr(task, "input_shape", ())) == 3:
        model.to(memory_format=torch.channels_last)
    autocast = auto(cfg.trainer.amp, device)  # bf16 on CUDA for "auto", always for "bf16"

    # optimizer and schedule
    torch.manual_seed(seeding.stream_seed(seed, "train"))  # dropout and other training noise
    device_example = tuple(t.to(device) for t in example)
    optimizer = build("optim", cfg.optim)(model, example=device_example)
    schedule = build("schedule", cfg.schedule)(optimizer, steps_per_epoch, cfg.trainer.epochs)

    # what is measured besides loss and accuracy: emergence E at every evaluation, per-layer stats every k steps
    extra_eval = measurer(cfg.measure, task, seed, n_params)
    on_step, layer_tracker = diagnostics(cfg.diagnostics, model, device_example)
    data_generator = seeding.generator(seed, "data")
    if resume is not None:
        checkpoint.restore(resume, model=model, optimizer=optimizer, schedule=schedule, layer_tracker=layer_tracker)
        set_rng(resume["rng"])
    train_model = torch.compile(model) if cfg.trainer.compile else model

    # loop
    sink = build("logger", cfg.logger)
    logger = RunLogger(run_dir, sink)
    info.update(pid=os.getpid(), **environment_info(device))
    write_json(run_dir / "run.json", {**info, "status": "running"})

    def save_checkpoint(state: dict) -> None:
        t0 = time.perf_counter()
        checkpoint.save(ckpt_path, state, model=model, optimizer=optimizer, schedule=schedule, logger=logger,
                        layer_tracker=layer_tracker, fingerprint=fingerprint, data_identity=info["data_identity"],
                        rng=get_rng(), init_stats=init_stats, init_s=init_s, wandb_id=info.get("wandb_id"))
        log.debug("checkpoint at step %d in %.3f s", state["step"], time.perf_counter() - t0)

    exit_code = 1
    try:
        info["wandb_id"] = sink.start(
            run_dir,
            labels["name"],
            labels["experiment"],
            labels["tags"],
            {**info["config"], "git": info["git"]},
            resume_id=resume and resume.get("wandb_id"),
        )
        if resume is None:
            logger.log({"epoch": 0, "time/init_s": init_s, "model/n_params": n_params,
                        **{f"init/{k}": v for k, v in init_stats.items()}}, step=0)  # fmt: skip
        tracker = loop.TargetTracker(task.target_metric, cfg.trainer.target)
        with checkpoint.Preemption() as preemption:
            result = loop.train(
                model=train_model, task=task, optimizer=optimizer, schedule=schedule, logger=logger,
                epochs=cfg.trainer.epochs, batch_size=cfg.trainer.batch_size, data_generator=data_generator,
                device=device, eval_every_steps=cfg.trainer.eval_every_steps, grad_clip=cfg.trainer.grad_clip,
                diverge_grad_norm=cfg.trainer.diverge_grad_norm, max_steps=cfg.trainer.max_steps, target=tracker,
                extra_eval=extra_eval, on_step=on_step, autocast=autocast, checkpoint=save_checkpoint,
                checkpoint_every_steps=cfg.trainer.checkpoint_every_steps,
                checkpoint_every_s=60 * cfg.trainer.checkpoint_minutes if cfg.trainer.checkpoint_minutes else None,
                preemption=preemption, resume=resume["loop"] if resume else None, progress=cfg.trainer.progress,
                label=labels["name"],
            )  # fmt: skip
        final = {}
        if result["status"] == "completed":
            final = {f"test/{k}": v for k, v in task.evaluate(model, "test", final=True).items()}
            logger.log({"epoch": result["step"] / steps_per_epoch, **final}, step=result["step"])
        summary = summarize(result, final, tracker, task.target_metric, init_s, n_params, init_stats)
        record = {**info, **summary}
        write_json(run_dir / "run.json", record)
        if not cfg.trainer.keep_checkpoint:
            ckpt_path.unlink(missing_ok=True)
        exit_code = 0
        short = {k: v for k, v in summary["summary"].items() if k.endswith(("epoch1", "final"))}
        log.info("%s: %s %s", labels["name"], result["status"], short)
        return record
    except checkpoint.Preempted as exc:
        write_json(run_dir / "run.json", {**info, "status": "preempted", "error": str(exc)})
        raise
    except BaseException as exc:
        record_failure(run_dir, info, exc)
        if checkpoint.is_disk_full(exc):
            raise checkpoint.DiskFull(run_dir) from None
        raise
    finally:
        logger.close(exit_code)


# exit codes: 2 for a configuration error or a run dir that is refused or in use, 1 for missing data, a corrupt
# checkpoint or a failed write, 128 + signal after a preemption checkpoint
EXIT_CODES = ((ConfigError, 2), (checkpoint.RunDirBusy, 2), (checkpoint.CheckpointError, 1), (OSError, 1))


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    try:
        record = run(cfg)
    except checkpoint.Preempted as exc:
        log.warning("%s; rerun the same command to resume", exc)
        sys.exit(128 + exc.signum)
    except Exception as exc:
        code = next((c for kind, c in EXIT_CODES if isinstance(exc, kind)), None)
        in_sweep = sweep_folder() is not None
        if code is None and not in_sweep:
            raise  # a bug: the full traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("%s%s", "config error: " if code == 2 else "", message, exc_info=code is None)
        if not in_sweep:
            sys.exit(code)
        record_sweep_failure(cfg.run_dir, message, code or 1)  # a bad job fails alone; the sweep goes on
        return None
    summary = record.get("summary", {})  # the best value of the target metric, returned to sweepers (e.g. optuna)
    return summary.get(summary_key(summary.get("target_metric", "val/acc"), "best"))


HYDRA_CONFIG_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException)


def main() -> None:
    """The command line: Hydra's own config errors (a key that does not exist, an unknown option) exit 2 in one line."""
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them and exiting 1
    try:
        hydra_main()
    except HYDRA_CONFIG_ERRORS as exc:
        parts = [str(exc), str(exc.__cause__ or "")]
        text = " ".join(line.strip() for part in parts for line in part.splitlines() if line.strip())
        print(f"config error: {text}", file=sys.stderr)
        sys.exit(2)
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


if __name__ == "__main__":
    main()
