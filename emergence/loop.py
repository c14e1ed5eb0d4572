"""The training/evaluation loop: plain PyTorch, explicit steps, visible timing, exact resume.

``train(...)`` evaluates the init itself (step 0), trains for ``epochs`` epochs, evaluates after every epoch (and every
``eval_every_steps`` steps if > 0), appends every record to ``metrics.jsonl`` through the logger, and stops cleanly with
status ``diverged`` on a non-finite loss or an exploding gradient norm. ``time/wall_s`` is training time only
(evaluation excluded, the device synchronized before every clock read).

Everything the loop knows lives in one plain dict ``state`` (counters, the epoch's running sums, the history of
evaluations, and the data generator's state at the start of the current epoch, updated after every epoch so that a
checkpoint taken at an epoch boundary resumes with the next epoch's order, not the first's). ``checkpoint(state)`` is
called at the end of every epoch, every ``checkpoint_every_steps`` steps and every ``checkpoint_every_s`` seconds, and
when a preemption signal arrives; ``train(..., resume=state)`` continues from such a state and gives the same records
as an uninterrupted run (the task draws each epoch's order, and a seed for each batch's augmentation, from the data
generator at the start of the epoch, so skipping the batches already done is exact).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn

from emergence.checkpoint import Preempted
from emergence.log import Progress, RunLogger


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TargetTracker:
    """Records the first evaluation at which ``metric`` reaches ``target`` (higher is better)."""

    def __init__(self, metric: str, target: float | None):
        self.metric, self.target, self.hit = metric, target, None

    def update(self, record: dict) -> None:
        value = record.get(self.metric)
        if self.hit is None and self.target is not None and value is not None and value >= self.target:
            self.hit = {k: record[k] for k in ("step", "epoch", "time/wall_s", "samples_seen")}


def initial_state() -> dict:
    return {
        "epoch": 1, "batch": 0, "step": 0, "samples": 0, "wall": 0.0, "status": "running", "diverged_at": None,
        "reason": None, "loss_sum": 0.0, "correct": 0, "seen": 0, "interval_steps": 0, "interval_time": 0.0,
        "history": [], "target_hit": None, "data_rng": None,
    }  # fmt: skip


def train(
    *,
    model: nn.Module,
    task,
    optimizer: torch.optim.Optimizer,
    schedule,
    logger: RunLogger,
    epochs: int,
    batch_size: int,
    data_generator: torch.Generator,
    device: torch.device,
    eval_every_steps: int = 0,
    grad_clip: float | None = None,
    diverge_grad_norm: float | None = 1e6,
    max_steps: int | None = None,
    target: TargetTracker | None = None,
    extra_eval: Callable[[nn.Module], dict] | None = None,
    on_step: Callable[[int], dict | None] | None = None,
    autocast: bool = False,
    checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every_steps: int = 0,
    checkpoint_every_s: float | None = None,
    preemption=None,
    resume: dict | None = None,
    progress: bool | str = "auto",
    label: str = "",
) -> dict:
    """Train ``model`` on ``task``; returns the final loop state (status, history of evaluations, counters)."""
    steps_per_epoch = task.steps_per_epoch(batch_size)
    total_steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    state = resume if resume is not None else initial_state()
    if target is not None:
        target.hit = state["target_hit"]
    bar = Progress(total_steps, progress, label)
    last_save = time.monotonic()

    def evaluate(epoch: float, train_stats: dict) -> None:
        record = {"epoch": epoch, "samples_seen": state["samples"], "time/wall_s": state["wall"], **train_stats}
        for k, v in task.evaluate(model, "val", epoch=epoch).items():
            record[f"val/{k}"] = v
        if extra_eval is not None:
            record.update(extra_eval(model))
        logger.log(record, state["step"])
        record["step"] = state["step"]
        state["history"].append({k: v for k, v in record.items() if not isinstance(v, str)})
        if target is not None:
            target.update(record)
            state["target_hit"] = target.hit
        model.train()

    def save() -> None:
        nonlocal last_save
        if checkpoint is not None:
            checkpoint(state)
            last_save = time.monotonic()

    if resume is None:
        evaluate(0, {})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    while state["epoch"] <= epochs and state["step"] < total_steps and state["status"] == "running":
        if state["data_rng"] is None:  # a fresh run: the data stream starts at its seed
            state["data_rng"] = data_generator.get_state()
        # the data stream as it was at the start of this epoch (a resumed run continues the saved stream, at an epoch
        # boundary as well as mid-epoch): the same order and augmentation seeds, batches already done are skipped
        data_generator.set_state(state["data_rng"])
        for batch in task.train_batches(batch_size, data_generator, start=state["batch"]):
            _sync(device)
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, stats = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Hot path (scripts/bench/runner.py): ONE host sync per step, needed for divergence detection, brings
            # back the loss, the correct count and the gradient norm together. Without clipping the norm is only
            # measured: clip_grad_norm_(.., inf) would also multiply every gradient by 1.0, a wasted pass.
            checks = [loss.detach(), torch.as_tensor(stats["correct"], device=loss.device)]
            if grad_clip:
                checks.append(torch.nn.utils.clip_grad_norm_(params, grad_clip))
            elif diverge_grad_norm is not None:
                checks.append(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
            loss_value, correct, *norm = torch.stack([c.float() for c in checks]).tolist()
            grad_norm = norm[0] if norm else None
            if not math.isfinite(loss_value) or (
                diverge_grad_norm is not None and grad_norm is not None and not grad_norm <= diverge_grad_norm
            ):
                state.update(
                    status="diverged", diverged_at=state["step"], reason=f"loss={loss_value}, grad_norm={grad_norm}"
                )
                break
            optimizer.step()
            schedule.step()
            _sync(device)
            dt = time.perf_counter() - t0
            n = int(stats["n"])
            state["wall"] += dt
            state["interval_time"] += dt
            state["interval_steps"] += 1
            state["step"] += 1
            state["batch"] += 1
            state["samples"] += n
            state["seen"] += n
            state["loss_sum"] += loss_value * n
            state["correct"] += int(correct)
            if on_step is not None:
                extra = on_step(state["step"])
                if extra:
                    logger.log({"epoch": state["step"] / steps_per_epoch, **extra}, state["step"])
            bar.update(state["step"], state["epoch"], loss=loss_value)
            if eval_every_steps and state["step"] % eval_every_steps == 0 and state["batch"] < steps_per_epoch:
                evaluate(state["step"] / steps_per_epoch, {"time/step_ms": _step_ms(state)})
                state["interval_steps"], state["interval_time"] = 0, 0.0  # the next step_ms covers the steps since
            if state["step"] >= total_steps:
                break
            if preemption is not None and preemption.requested:
                save()
                preemption.forward()
                raise Preempted(preemption.signum)
            due_steps = checkpoint_every_steps and state["step"] % checkpoint_every_steps == 0
            due_time = checkpoint_every_s is not None and time.monotonic() - last_save >= checkpoint_every_s
            if due_steps or due_time:
                save()
        if state["status"] != "running":
            break
        seen = max(1, state["seen"])
        evaluate(
            state["step"] / steps_per_epoch,
            {
                "train/loss": state["loss_sum"] / seen,
                "train/acc": state["correct"] / seen,
                "time/step_ms": _step_ms(state),
            },
        )
        state.update(
            epoch=state["epoch"] + 1,
            batch=0,
            loss_sum=0.0,
            correct=0,
            seen=0,
            interval_steps=0,
            interval_time=0.0,
            data_rng=data_generator.get_state(),
        )
        if state["step"] < total_steps and state["epoch"] <= epochs:
            save()
    bar.close()
    if state["status"] == "running":
        state["status"] = "completed"
    state["steps_per_epoch"] = steps_per_epoch
    return state


def _step_ms(state: dict) -> float:
    return 1000 * state["interval_time"] / max(1, state["interval_steps"])
