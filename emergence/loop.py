"""The training/evaluation loop: plain PyTorch, explicit steps, visible timing.

``train(...)`` evaluates the init itself (step 0), trains for ``epochs`` epochs, evaluates after every epoch (and every
``eval_every_steps`` steps if > 0), appends every record to ``metrics.jsonl`` through the logger, and stops cleanly with
status ``diverged`` on a non-finite loss or an exploding gradient norm. ``time/wall_s`` is training time only
(evaluation excluded, the device synchronized before every clock read).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn

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
    progress: bool | str = "auto",
    label: str = "",
) -> dict:
    """Train ``model`` on ``task``; returns a summary with status, history of eval records and counters."""
    steps_per_epoch = task.steps_per_epoch(batch_size)
    total_steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    history: list[dict] = []
    state = {"step": 0, "samples": 0, "wall": 0.0, "status": "completed", "diverged_at": None, "reason": None}
    bar = Progress(total_steps, progress, label)

    def evaluate(epoch: float, train_stats: dict) -> dict:
        record = {"epoch": epoch, "samples_seen": state["samples"], "time/wall_s": state["wall"], **train_stats}
        for split in ("val",):
            for k, v in task.evaluate(model, split).items():
                record[f"{split}/{k}"] = v
        if extra_eval is not None:
            record.update(extra_eval(model))
        logger.log(record, state["step"])
        record["step"] = state["step"]
        history.append(record)
        if target is not None:
            target.update(record)
        return record

    evaluate(0, {})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(1, epochs + 1):
        if state["step"] >= total_steps:
            break
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen, interval_steps, interval_time = 0, 0, 0.0
        for batch in task.train_batches(batch_size, data_generator):
            _sync(device)
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, stats = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = None
            if grad_clip is not None or diverge_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else math.inf))
            loss_value = float(loss.detach())  # one host sync per step, needed for divergence detection
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
            state["wall"] += dt
            interval_time += dt
            interval_steps += 1
            state["step"] += 1
            n = int(stats["n"])
            state["samples"] += n
            seen += n
            loss_sum += loss.detach() * n
            correct += stats["correct"]
            if on_step is not None:
                extra = on_step(state["step"])
                if extra:
                    logger.log({"epoch": state["step"] / steps_per_epoch, **extra}, state["step"])
            bar.update(state["step"], epoch, loss=loss_value)
            if eval_every_steps and state["step"] % eval_every_steps == 0 and state["step"] % steps_per_epoch:
                evaluate(state["step"] / steps_per_epoch, {"time/step_ms": 1000 * interval_time / interval_steps})
                interval_steps, interval_time = 0, 0.0  # step_ms of the next record covers the steps since this one
                model.train()
            if state["step"] >= total_steps:
                break
        if state["status"] != "completed":
            break
        train_stats = {
            "train/loss": float(loss_sum) / max(1, seen),
            "train/acc": int(correct) / max(1, seen),
            "time/step_ms": 1000 * interval_time / max(1, interval_steps),
        }
        evaluate(state["step"] / steps_per_epoch, train_stats)
        model.train()
    bar.close()
    return {
        "status": state["status"],
        "diverged_at": state["diverged_at"],
        "reason": state["reason"],
        "history": history,
        "steps": state["step"],
        "samples_seen": state["samples"],
        "wall_s": state["wall"],
        "steps_per_epoch": steps_per_epoch,
    }
