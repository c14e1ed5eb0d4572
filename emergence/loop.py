"""The training/evaluation loop: plain PyTorch, explicit steps, visible timing, exact resume.

``train(trainer, model, task, optimizer, schedule, context, state)`` evaluates the init itself (step 0, a fresh run
only), trains for ``trainer.epochs`` epochs (at most ``trainer.max_steps`` steps), evaluates after every epoch (and
every ``trainer.eval_every_steps`` steps if > 0), appends every record to ``metrics.jsonl`` through the context's
logger, and stops cleanly with status ``diverged`` on a non-finite loss or a gradient norm above
``trainer.diverge_grad_norm``. ``time/wall_s`` is training time only (evaluation excluded, the device synchronized
before every clock read). ``context`` holds the device, the logger and the optional hooks (target tracker, emergence
probe, diagnostics hook, checkpoint writer, preemption flag).

Everything the loop knows lives in one ``LoopState`` (counters, the epoch's running sums, the history of
evaluations, and the data generator's state at the start of the current epoch, updated after every epoch so that a
checkpoint taken at an epoch boundary resumes with the next epoch's order, not the first's). Its ``state_dict()`` is
the checkpoint's ``loop`` entry, a plain dict with the same keys checkpoints have always had. ``context.checkpoint``
is called at the end of every epoch, every ``checkpoint_every_steps`` steps and every ``checkpoint_minutes``, and
when a preemption signal arrives; ``train(..., state=restored)`` continues from such a state and gives the same
records as an uninterrupted run (the task draws each epoch's order, and a seed for each batch's augmentation, from
the data generator at the start of the epoch, so skipping the batches already done is exact).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from emergence.checkpoint import Preempted
from emergence.components import use_feature
from emergence.log import Progress, RunLogger


class TargetTracker:
    """Records the first evaluation at which ``metric`` reaches ``target`` (higher is better)."""

    def __init__(self, metric: str, target: float | None):
        self.metric, self.target, self.hit = metric, target, None

    def update(self, record: dict) -> None:
        value = record.get(self.metric)
        if self.hit is None and self.target is not None and value is not None and value >= self.target:
            self.hit = {k: record[k] for k in ("step", "epoch", "time/wall_s", "samples_seen")}


@dataclass
class LoopState:
    """Counters, the current epoch's running sums, the evaluations so far and the data stream at the epoch's start."""

    epoch: int = 1
    batch: int = 0  # batches done in the current epoch
    step: int = 0
    samples: int = 0
    wall: float = 0.0  # training seconds (evaluation excluded)
    status: str = "running"  # running | completed | diverged
    diverged_at: int | None = None
    reason: str | None = None
    loss_sum: float = 0.0  # the current epoch's training loss x samples, correct predictions and samples
    correct: int = 0
    seen: int = 0
    interval_steps: int = 0  # steps and seconds since the last evaluation (time/step_ms)
    interval_time: float = 0.0
    history: list = field(default_factory=list)  # every evaluation record (numbers only)
    target_hit: dict | None = None
    data_rng: torch.Tensor | None = None  # the data generator's state at the start of the current epoch

    def state_dict(self) -> dict:
        """The checkpoint's ``loop`` entry: a plain dict of the fields (tensors, numbers, lists and dicts only)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def load_state_dict(self, state: dict) -> None:
        """Take every field from ``state`` (a checkpoint's ``loop`` entry); a missing or unknown key is an error."""
        names = {f.name for f in fields(self)}
        if set(state) != names:
            missing, unknown = sorted(names - set(state)), sorted(set(state) - names)
            raise ValueError(f"a loop state with missing keys {missing} or unknown keys {unknown}")
        for name in names:
            setattr(self, name, state[name])


@dataclass
class Context:
    """Where the loop runs, what it reports to, and its optional hooks."""

    device: torch.device
    logger: RunLogger
    target: TargetTracker | None = None
    extra_eval: Callable[[nn.Module], dict] | None = None  # more metrics at every evaluation (emergence_probe)
    on_step: Callable[[int], dict | None] | None = None  # after every step (diagnostics_hook)
    checkpoint: Callable[[LoopState], None] | None = None
    preemption: object | None = None  # checkpoint.Preemption: .requested, .forward(), .signum
    label: str = ""  # the progress bar's


def total_grad_norm(grads: list[torch.Tensor], uniform: bool) -> torch.Tensor:
    """``torch.nn.utils.get_total_norm(grads)`` (the same value, bit for bit), without its per-step grouping by device
    and dtype when ``uniform`` says that every gradient is a plain CPU or CUDA tensor of one device and dtype (then
    torch forms a single group and takes this very path: per-tensor ``_foreach_norm``, then the norm of the norms)."""
    if uniform and grads:
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    return torch.nn.utils.get_total_norm(grads)


def train(trainer, model: nn.Module, task, optimizer, schedule, context: Context, state: LoopState) -> LoopState:
    """Train ``model`` on ``task`` from ``state`` (a fresh one, or one restored from a checkpoint) with the settings
    of ``trainer`` (the trainer config); returns the final state (status, evaluations, counters)."""
    epochs, batch_size, eval_every = int(trainer.epochs), int(trainer.batch_size), int(trainer.eval_every_steps)
    grad_clip, diverge_at, max_steps = trainer.grad_clip, trainer.diverge_grad_norm, trainer.max_steps
    every_steps = int(trainer.checkpoint_every_steps or 0)
    every_s = 60 * trainer.checkpoint_minutes if trainer.checkpoint_minutes else None
    device, logger, target, checkpoint, preemption = (context.device, context.logger, context.target,
                                                      context.checkpoint, context.preemption)  # fmt: skip
    autocast, cuda = use_feature(trainer.amp, device), device.type == "cuda"
    steps_per_epoch = task.steps_per_epoch(batch_size)
    total_steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    if target is not None:
        target.hit = state.target_hit
    bar = Progress(total_steps, trainer.progress, context.label)
    last_save = time.monotonic()
    data_generator = torch.Generator()

    def evaluate(epoch: float, train_stats: dict) -> None:
        record = {"epoch": epoch, "samples_seen": state.samples, "time/wall_s": state.wall, **train_stats}
        for k, v in task.evaluate(model, "val", epoch=epoch).items():
            record[f"val/{k}"] = v
        if context.extra_eval is not None:
            record.update(context.extra_eval(model))
        logger.log(record, state.step)
        record["step"] = state.step
        state.history.append({k: v for k, v in record.items() if not isinstance(v, str)})
        if target is not None:
            target.update(record)
            state.target_hit = target.hit
        model.train()

    def save() -> None:
        nonlocal last_save
        if checkpoint is not None:
            checkpoint(state)
            last_save = time.monotonic()

    if not state.history:  # a fresh run evaluates its init (a restored state holds that evaluation)
        evaluate(0, {})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = {(p.device, p.dtype) for p in params}
    uniform = len(groups) == 1 and next(iter(groups))[0].type in ("cpu", "cuda") and all(
        type(p) in (torch.Tensor, nn.Parameter) for p in params
    )
    check_norm = bool(grad_clip) or diverge_at is not None
    while state.epoch <= epochs and state.step < total_steps and state.status == "running":
        # the data stream as it was at the start of this epoch (a resumed run continues the saved stream, at an epoch
        # boundary as well as mid-epoch): the same order and augmentation seeds, batches already done are skipped
        data_generator.set_state(state.data_rng)
        for batch in task.train_batches(batch_size, data_generator, start=state.batch):
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            if autocast:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss, stats = task.loss(model, batch)
            else:
                loss, stats = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Hot path (scripts/bench/runner.py): ONE host sync per step, needed for divergence detection, brings
            # back the loss, the correct count and the gradient norm together. Without clipping the norm is only
            # measured: clip_grad_norm_(.., inf) would also multiply every gradient by 1.0, a wasted pass.
            checks = [loss.detach().float(), torch.as_tensor(stats["correct"], device=loss.device).float()]
            if grad_clip:
                checks.append(torch.nn.utils.clip_grad_norm_(params, grad_clip).float())
            elif check_norm:
                checks.append(total_grad_norm([p.grad for p in params if p.grad is not None], uniform).float())
            loss_value, correct, *norm = torch.stack(checks).tolist()
            grad_norm = norm[0] if norm else None
            if not math.isfinite(loss_value) or (
                diverge_at is not None and grad_norm is not None and not grad_norm <= diverge_at
            ):
                state.status, state.diverged_at = "diverged", state.step
                state.reason = f"loss={loss_value}, grad_norm={grad_norm}"
                break
            optimizer.step()
            schedule.step()
            if cuda:
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            n = int(stats["n"])
            state.wall += dt
            state.interval_time += dt
            state.interval_steps += 1
            state.step += 1
            state.batch += 1
            state.samples += n
            state.seen += n
            state.loss_sum += loss_value * n
            state.correct += int(correct)
            step = state.step
            if context.on_step is not None:
                extra = context.on_step(step)
                if extra:
                    logger.log({"epoch": step / steps_per_epoch, **extra}, step)
            if bar.enabled:
                bar.update(step, state.epoch, loss=loss_value)
            if eval_every and step % eval_every == 0 and state.batch < steps_per_epoch:
                evaluate(step / steps_per_epoch, {"time/step_ms": _step_ms(state)})
                state.interval_steps, state.interval_time = 0, 0.0  # the next step_ms covers the steps since
            if step >= total_steps:
                break
            if preemption is not None and preemption.requested:
                save()
                preemption.forward()
                raise Preempted(preemption.signum)
            due_steps = every_steps and step % every_steps == 0
            due_time = every_s is not None and time.monotonic() - last_save >= every_s
            if due_steps or due_time:
                save()
        if state.status != "running":
            break
        seen = max(1, state.seen)
        train_stats = {"train/loss": state.loss_sum / seen, "train/acc": state.correct / seen,
                       "time/step_ms": _step_ms(state)}  # fmt: skip
        evaluate(state.step / steps_per_epoch, train_stats)
        state.epoch, state.batch, state.loss_sum, state.correct, state.seen = state.epoch + 1, 0, 0.0, 0, 0
        state.interval_steps, state.interval_time, state.data_rng = 0, 0.0, data_generator.get_state()
        if state.step < total_steps and state.epoch <= epochs:
            save()
    bar.close()
    if state.status == "running":
        state.status = "completed"
    return state


def _step_ms(state: LoopState) -> float:
    return 1000 * state.interval_time / max(1, state.interval_steps)
