"""Hydra entry point: ``python -m emergence.train arch=mlp init=emergence data=fashion_mnist seed=0``.

``run(cfg)`` reads top to bottom: check the config -> skip a finished run, or resume an interrupted one from its
checkpoint -> seed streams -> data -> model -> init (timed) -> optimizer and schedule -> train/eval loop -> test
evaluation -> ``run.json``. The pieces it assembles live in ``emergence/components.py``.
Everything is written into the run dir, which is derived from the experiment, the overrides that matter and the seed
(conf/hydra/default.yaml), so a rerun of a sweep finds and skips its finished runs (``force=true`` reruns them).
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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from emergence import checkpoint, loop, seeding
from emergence.components import (
    auto,
    diagnostics,
    get_rng,
    initialize,
    measurer,
    resolve_device,
    set_aside,
    set_rng,
)
from emergence.config import ConfigError, config_fingerprint, validate
from emergence.log import RunLogger
from emergence.runinfo import environment_info, labels_from_hydra, read_run_json, summarize, write_json

log = logging.getLogger("emergence")


def run(cfg: DictConfig) -> dict:
    """Train and evaluate one configuration; returns the run summary (also written to ``run.json``)."""
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = config_fingerprint(cfg)
    ckpt_path = run_dir / "checkpoint.pt"

    # a finished run is skipped, an interrupted one resumes from its checkpoint, a foreign run dir is refused
    previous, resume = read_run_json(run_dir), None
    if previous is not None and not cfg.force:
        if previous.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{run_dir} holds a run of a different configuration (fingerprint {previous.get('fingerprint')} != "
                f"{fingerprint}). Use another paths.runs_dir or experiment name, or force=true to overwrite it."
            )
        if previous.get("status") in ("completed", "diverged"):
            log.info("skipping %s: already %s (force=true reruns it)", run_dir, previous["status"])
            return previous
        resume = checkpoint.load(ckpt_path)  # raises CheckpointError (and changes nothing) if it is corrupt
    if resume is None:
        set_aside(run_dir / "metrics.jsonl")  # an earlier unfinished attempt is kept, never overwritten
        ckpt_path.unlink(missing_ok=True)  # only reachable with force=true: the old run is being replaced
    else:
        log.info("resuming %s at step %d (epoch %d)", run_dir, resume["loop"]["step"], resume["loop"]["epoch"])
    labels = labels_from_hydra(cfg)

    # seeds: separate streams so the init never changes the data order (emergence/seeding.py)
    seeding.make_deterministic()
    if cfg.trainer.get("cpu_threads"):
        torch.set_num_threads(int(cfg.trainer.cpu_threads))
    seed = int(cfg.seed)
    device = resolve_device(cfg.trainer.device)

    # data
    task = instantiate(cfg.data).setup(device)
    task.run_dir = run_dir  # where a task may write samples (translations)

    # model (built and initialized on the CPU, so the same seed gives the same weights on any device)
    torch.manual_seed(seeding.stream_seed(seed, "model"))
    model = instantiate(cfg.arch, **task.model_kwargs())
    example = tuple(t.cpu() for t in task.example_inputs())

    # init (timed; a data-dependent init such as GradInit is cached in the run dir and reused on a rerun)
    initializer = instantiate(cfg.init)
    if resume is None:
        init_stats, init_s = initialize(
            initializer, model, example, task, seed, device, run_dir, fingerprint, use_cache=not cfg.force
        )
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
    optimizer = instantiate(cfg.optim)(model, example=device_example)
    steps_per_epoch = task.steps_per_epoch(cfg.trainer.batch_size)
    schedule = instantiate(cfg.schedule)(optimizer, steps_per_epoch, cfg.trainer.epochs)

    # what is measured besides loss and accuracy: emergence E at every evaluation, per-layer stats every k steps
    extra_eval = measurer(cfg.measure, task, seed, n_params)
    on_step, layer_tracker = diagnostics(cfg.diagnostics, model, device_example)
    data_generator = seeding.generator(seed, "data")
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        if layer_tracker is not None:
            layer_tracker.load_state(resume["layer_tracker"])
        set_rng(resume["rng"])
    train_model = torch.compile(model) if cfg.trainer.compile else model

    # loop
    sink = instantiate(cfg.logger)
    logger = RunLogger(run_dir, sink, truncate_to=resume["metrics_bytes"] if resume else None)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    info = {
        "fingerprint": fingerprint,
        "labels": labels,
        "config": resolved,
        "pid": os.getpid(),
        **environment_info(device),
    }
    write_json(run_dir / "run.json", {**info, "status": "running"})

    def save_checkpoint(state: dict) -> None:
        t0 = time.perf_counter()
        checkpoint.save_atomic({
            "fingerprint": fingerprint, "loop": state, "model": model.state_dict(), "optimizer":
            optimizer.state_dict(), "schedule": schedule.state_dict(), "rng": get_rng(), "init_stats": init_stats,
            "init_s": init_s, "metrics_bytes": logger.offset(), "wandb_id": info.get("wandb_id"),
            "layer_tracker": layer_tracker.state() if layer_tracker is not None else None,
        }, ckpt_path)  # fmt: skip
        log.debug("checkpoint at step %d in %.3f s", state["step"], time.perf_counter() - t0)

    exit_code = 1
    try:
        info["wandb_id"] = sink.start(
            run_dir,
            labels["name"],
            labels["experiment"],
            labels["tags"],
            {**resolved, "git": info["git"]},
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
        write_json(run_dir / "run.json", {**info, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        logger.close(exit_code)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        record = run(cfg)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        sys.exit(2)
    except (FileNotFoundError, checkpoint.CheckpointError, OSError) as exc:
        log.error("%s", exc)
        sys.exit(1)
    except checkpoint.Preempted as exc:
        log.warning("%s; rerun the same command to resume", exc)
        sys.exit(128 + exc.signum)
    summary = record.get("summary", {})  # the best value of the target metric, returned to sweepers (e.g. optuna)
    return summary.get(summary.get("target_metric", "val/acc").replace("/", "_") + "_best")


if __name__ == "__main__":
    main()
