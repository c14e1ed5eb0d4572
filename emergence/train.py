"""Hydra entry point: ``python -m emergence.train arch=mlp init=emergence data=fashion_mnist seed=0``.

``run(cfg)`` reads top to bottom: check the config -> lock the run dir (one process per run dir) -> decide: refuse a
foreign run dir, skip a finished run, or resume an interrupted one from its checkpoint -> seed streams -> data and its
identity (a run made on other data is refused) -> model and init (timed) -> optimizer and schedule -> what is measured
besides loss and accuracy -> train/eval loop -> test evaluation -> ``run.json``. The pieces it assembles live in
``emergence/components.py``; the decisions and the checkpoint's assembly in ``emergence/rundir.py`` (the files
themselves in ``emergence/checkpoint.py``); the loop in ``emergence/loop.py``.
Everything is written into the run dir, which is derived from the experiment, the overrides that matter and the seed
(conf/hydra/default.yaml), so a rerun of a sweep finds and skips its finished runs (``force=true`` reruns them).
``main`` maps errors to exit codes (emergence/cli.py: 2: configuration, refused or busy run dir; 1: missing data,
corrupt checkpoint, failed write); in a multirun a failed job is recorded and the sweep goes on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from emergence import checkpoint, cli, components, loop, rundir, runinfo, seeding
from emergence.config import config_fingerprint, validate
from emergence.log import RunLogger

log = logging.getLogger("emergence")


def run(cfg: DictConfig) -> dict:
    """Train and evaluate one configuration; returns the run summary (also written to ``run.json``)."""
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.lock_run_dir(run_dir):  # one process per run dir (a second one stops with RunDirBusy)
        return _run(cfg, run_dir)


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    labels, trainer, seed = runinfo.labels_from_hydra(cfg), cfg.trainer, int(cfg.seed)
    config = OmegaConf.to_container(cfg, resolve=True)
    info = {"fingerprint": config_fingerprint(cfg), "labels": labels, "config": config}
    # a finished run is skipped, an interrupted one resumes from its checkpoint, a foreign run dir is refused
    attempt = rundir.Attempt(run_dir, cfg, info)  # refusals change nothing
    # seeds: separate streams so the init never changes the data order (emergence/seeding.py)
    seeding.make_deterministic()
    if trainer.get("cpu_threads"):
        torch.set_num_threads(int(trainer.cpu_threads))
    device = components.resolve_device(trainer.device)
    # data, and its identity (a content hash): a run made on other data is refused
    with attempt.reading_data():
        task = components.build("data", cfg.data).setup(device)
        steps_per_epoch = task.steps_per_epoch(trainer.batch_size)
    attempt.check_data(components.data_identity(task))
    if attempt.finished:
        log.info("skipping %s: already %s (force=true reruns it)", run_dir, attempt.previous["status"])
        return attempt.previous
    attempt.begin()
    resume = attempt.resume
    task.run_dir = run_dir  # where a task may write samples (translations)

    # model and init (on the CPU, timed; a data-dependent init such as GradInit is cached in the run dir)
    key = f"{info['fingerprint']}-{info['data_identity']}"  # the learned init depends on the data too
    built = components.build_initialized_model(cfg, seed, task, device=device, run_dir=run_dir, cache_key=key,
                                    use_cache=not cfg.force, apply_init=resume is None)  # fmt: skip
    model = built.model.to(device)
    init_stats, init_s = (built.stats, built.seconds) if resume is None else (resume["init_stats"], resume["init_s"])
    n_params = sum(p.numel() for p in model.parameters())
    if components.use_feature(trainer.channels_last, device) and len(getattr(task, "input_shape", ())) == 3:
        model.to(memory_format=torch.channels_last)

    # optimizer and schedule
    torch.manual_seed(seeding.stream_seed(seed, "train"))  # dropout and other training noise
    example = tuple(t.to(device) for t in task.example_inputs())
    optimizer = components.build("optim", cfg.optim)(model, example=example)
    schedule = components.build("schedule", cfg.schedule)(optimizer, steps_per_epoch, trainer.epochs)

    # what is measured besides loss and accuracy: emergence E at every evaluation, per-layer stats every k steps
    probe = components.emergence_probe(cfg.measure, task, seed, n_params)
    on_step, layer_tracker = components.diagnostics_hook(cfg.diagnostics, model, example)
    state = loop.LoopState(data_rng=seeding.generator(seed, "data").get_state())
    if resume is not None:
        state = rundir.restore(resume, model=model, optimizer=optimizer, schedule=schedule, layer_tracker=layer_tracker)
    train_model = torch.compile(model) if trainer.compile else model

    # loop
    sink = components.build("logger", cfg.logger)
    logger = RunLogger(run_dir, sink)
    info.update(pid=os.getpid(), **runinfo.environment_info(device))
    runinfo.write_json(run_dir / "run.json", {**info, "status": "running"})
    save = rundir.Checkpointer(run_dir / "checkpoint.pt", info, model=model, optimizer=optimizer, schedule=schedule,
                               logger=logger, layer_tracker=layer_tracker, init_stats=init_stats, init_s=init_s)
    exit_code = 1
    try:
        info["wandb_id"] = sink.start(run_dir, labels["name"], labels["experiment"], labels["tags"], {**config,
                                      "git": info["git"]}, resume_id=resume and resume.get("wandb_id"))  # fmt: skip
        if resume is None:
            logger.log({"epoch": 0, "time/init_s": init_s, "model/n_params": n_params,
                        **{f"init/{k}": v for k, v in init_stats.items()}}, step=0)  # fmt: skip
        tracker = loop.TargetTracker(task.target_metric, trainer.target)
        with checkpoint.Preemption() as preemption:
            context = loop.Context(device, logger, tracker, probe, on_step, save, preemption, labels["name"])
            result = loop.train(trainer, train_model, task, optimizer, schedule, context, state)
        final = {}
        if result.status == "completed":
            final = {f"test/{k}": v for k, v in task.evaluate(model, "test", final=True).items()}
            logger.log({"epoch": result.step / steps_per_epoch, **final}, step=result.step)
        summary = runinfo.summarize(result, steps_per_epoch, final, tracker, init_s, n_params, init_stats)
        record = {**info, **summary}
        runinfo.write_json(run_dir / "run.json", record)
        if not trainer.keep_checkpoint:
            (run_dir / "checkpoint.pt").unlink(missing_ok=True)
        exit_code = 0
        metric = task.target_metric
        log.info("%s: %s %s", labels["name"], result.status,
                 {k: summary["summary"][k] for k in [runinfo.summary_key(metric, w) for w in ("epoch1", "final")] +
                  [runinfo.summary_key(k, "final") for k in final]})  # fmt: skip
        return record
    except checkpoint.Preempted as exc:
        runinfo.write_json(run_dir / "run.json", {**info, "status": "preempted", "error": str(exc)})
        raise
    except BaseException as exc:
        components.record_failure(run_dir, info, exc)
        if checkpoint.is_disk_full(exc):
            raise checkpoint.DiskFull(run_dir) from None
        raise
    finally:
        logger.close(exit_code)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """One job: exit codes, and the best value of the target metric for sweepers (emergence/cli.py)."""
    return cli.run_job(run, cfg)


def main() -> None:
    """The command line (``emergence-train``): Hydra's own config errors exit 2 in one line (emergence/cli.py)."""
    cli.main(hydra_main)


if __name__ == "__main__":
    main()
