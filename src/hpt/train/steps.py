"""Phase 3 of a run, the steps: forward, backward, update, from the start (or the checkpoint) to
`train.steps`, with what is logged, evaluated and checkpointed on the way."""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field

import torch
from lightning_fabric import Fabric
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hpt.config import PretrainConfig
from hpt.core.distributed import mean_over_processes
from hpt.core.ema import ema_update
from hpt.core.interrupt import Interrupted
from hpt.core.run_files import CHECKPOINT, read_metrics
from hpt.train.build import Training
from hpt.train.callbacks import Checkpointed, Evaluation, StepEnd
from hpt.train.checkpoint import save_checkpoint, unhealthy
from hpt.train.console import WARNING, duration, say
from hpt.train.guard import Stopped, StopRequests
from hpt.train.health import CollapseWatch


@dataclass(frozen=True)
class Clock:
    """The run's wall time so far, over every attempt (a resumed run adds to the time recorded before)."""

    before: float
    started: float = field(default_factory=time.perf_counter)

    def __call__(self) -> float:
        return self.before + time.perf_counter() - self.started


@dataclass(frozen=True)
class Ended:
    steps: int
    last_loss: float
    clock: Clock


@dataclass
class Window:
    """What happened since the last logged step: `metrics.jsonl`'s throughput and loss are over it."""

    started: float
    evaluated_before: float = 0.0
    """`Evaluations.seconds` when the window started: evaluation time is not training time."""
    images: int = 0
    waiting: float = 0.0
    losses: list[float] = field(default_factory=list)


def run_steps(fabric: Fabric, config: PretrainConfig, training: Training, stops: StopRequests | None = None) -> Ended:
    """`stops`: the stop signals received so far; one stops the run cleanly after its step (`guard.py`)."""
    t, steps, console = training, config.train.steps, training.console
    run, wall_time = t.evaluations.run, Clock(t.provenance.wall_time_s)
    window, collapse = Window(wall_time.started, t.evaluations.seconds), CollapseWatch(config.train.collapse_threshold)
    loss_value, done = math.nan, t.start_step
    t.evaluations.hold_statistics()
    if t.resumed is None:
        evaluate_or_stop(fabric, t, 0, wall_time.before)  # step 0 is a data point: the starting point as it is
    elif done >= steps:  # stopped after its last step's checkpoint, before the export: the export is what is left
        losses = [record["loss"] for record in read_metrics(run) if "loss" in record]
        loss_value = losses[-1] if losses else math.nan
        say(console, f"--resume: all {steps} steps were trained before the stop; finishing the run (its export)")
    progress = Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # a run folder may be named a[red]b
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    plain = (
        PlainProgress(t.start_step, steps, config.train.batch_size, t.evaluations.seconds)
        if not console.is_terminal
        else None
    )
    monitor_every = config.monitor.interval(steps)
    with progress:
        task = progress.add_task(run.name, total=steps, completed=t.start_step, loss=math.nan)
        for step in range(t.start_step, steps):
            loss_value = _step(fabric, t, step, window, collapse)
            for path, reason in t.unreadable.new().items():
                say(console, ("skipped", WARNING), f" {path}: {reason}")
            if not math.isfinite(loss_value):
                raise unhealthy(f"the loss became {loss_value}", step + 1, run)
            window.images += config.train.batch_size
            window.losses.append(loss_value)
            done = step + 1
            progress.update(task, advance=1, loss=loss_value)
            t.callbacks.step(StepEnd(done, steps, loss_value, float(t.lr_at[step])))
            if done % config.train.log_every == 0 or done == steps:
                window = _log(t, done, float(t.lr_at[step]), window, collapse, wall_time.started)
            if plain is not None and plain.due(done):
                say(console, plain.line(done, loss_value, t.evaluations.seconds))
            if monitor_every and done % monitor_every == 0 and done < steps:
                evaluate_or_stop(fabric, t, done, wall_time())
            if done % config.train.checkpoint_every == 0 and done < steps:
                keep_step(fabric, t, done, wall_time())
            if stops is not None and done < steps and _stop_agreed(fabric, stops.received is not None):
                keep_step(fabric, t, done, wall_time())
                fabric.barrier()  # the checkpoint is on disk before any process leaves
                raise Stopped(stops.received or signal.SIGTERM, done, run, speaks=t.writes)
    return Ended(done, loss_value, wall_time)


def keep_step(fabric: Fabric, t: Training, done: int, wall_time_s: float) -> None:
    """The checkpoint of step `done`: the method, the optimiser, the data's position, the provenance."""
    provenance = t.provenance.at(done, wall_time_s).record()
    save_checkpoint(t.evaluations.run, t.method, t.optimizer, provenance, t.writes, t.data_state(fabric))
    t.callbacks.checkpoint(Checkpointed(done, t.evaluations.run / CHECKPOINT))


def evaluate_or_stop(fabric: Fabric, t: Training, done: int, wall_time_s: float) -> None:
    """The monitor's evaluation of step `done`; a stop signal during it (a single process: `core/interrupt.py`)
    keeps step `done` (nothing at step 0, where nothing was trained and a resume starts again) and stops."""
    try:
        scores = t.evaluations(t.provenance.at(done, wall_time_s))
    except Interrupted as stop:
        if done:
            keep_step(fabric, t, done, wall_time_s)
        raise Stopped(stop.received, done, t.evaluations.run, speaks=t.writes) from None
    if scores is not None:
        t.callbacks.evaluation(Evaluation(done, scores))


PLAIN_EVERY_S = 30.0
PLAIN_EVERY_SHARE = 0.05


class PlainProgress:
    """Without a terminal (a cluster job, `nohup`, CI), the progress bar's place: one plain line every
    `PLAIN_EVERY_S` seconds or `PLAIN_EVERY_SHARE` of the run, whichever comes first, and at the end."""

    def __init__(self, start_step: int, steps: int, batch_size: int, evaluated: float = 0.0) -> None:
        self.start_step, self.steps, self.batch_size = start_step, steps, batch_size
        self.started = self.last_time = time.perf_counter()
        self.last_step = start_step
        self.last_evaluated = evaluated
        self.every = max(1, math.ceil(steps * PLAIN_EVERY_SHARE))

    def due(self, done: int) -> bool:
        crossed = done // self.every > self.last_step // self.every
        return done == self.steps or crossed or time.perf_counter() - self.last_time >= PLAIN_EVERY_S

    def line(self, done: int, loss: float, evaluated: float = 0.0) -> str:
        """`evaluated`: seconds spent evaluating so far (the monitor's), left out of the images per second."""
        now = time.perf_counter()
        training = max(now - self.last_time - (evaluated - self.last_evaluated), 1e-9)
        rate = (done - self.last_step) * self.batch_size / training
        left = (self.steps - done) * (now - self.started) / max(done - self.start_step, 1)
        self.last_time, self.last_step, self.last_evaluated = now, done, evaluated
        return f"step {done}/{self.steps}  {rate:.0f} images/s  loss {loss:.4f}  {duration(left)} left"


def _stop_agreed(fabric: Fabric, here: bool) -> bool:
    """Whether any process received a stop signal: all of them stop at the same step. With several processes,
    a second all-reduce of a float per step (a synchronisation point): the price of stopping together."""
    return here if fabric.world_size == 1 else mean_over_processes(float(here), fabric.device) > 0


def _step(fabric: Fabric, t: Training, step: int, window: Window, collapse: CollapseWatch) -> float:
    """One optimisation step; returns its loss, averaged over the processes (the same on every one)."""
    waiting_since = time.perf_counter()
    try:
        views, _ = next(t.batches)
    except Exception:
        t.unreadable.new()  # too many unreadable files: that one line, not the loader's traceback
        raise
    window.waiting += time.perf_counter() - waiting_since
    if t.device_views is not None:
        views = t.device_views(views, step)
    if t.channels_last:
        views = [view.contiguous(memory_format=torch.channels_last) for view in views]
    for group in t.optimizer.param_groups:
        group["lr"] = float(t.lr_at[step])  # the schedules are NumPy arrays: reading them waits for nothing
        if group["decays"]:
            group["weight_decay"] = float(t.weight_decay_at[step])
    t.method.on_step(step)
    t.optimizer.zero_grad(set_to_none=True)
    parts = micro_batches(views, t.accumulate)
    total, embedded = None, []
    for index, part in enumerate(parts):
        # across processes the gradients are all-reduced once, after the last part (one process has none to skip)
        skips_sync = index < len(parts) - 1 and fabric.world_size > 1
        with fabric.no_backward_sync(t.model, enabled=skips_sync):  # type: ignore[arg-type]  # Fabric's own module
            loss, embeddings = t.model(part)
            fabric.backward(loss / len(parts))  # the gradients summed over the parts: the whole batch's mean
        total = loss.detach() if total is None else total + loss.detach()
        embedded.append(embeddings)
    assert total is not None
    collapse.add(torch.cat(embedded))  # the whole batch's spread, however it was split
    # The one host synchronisation a step makes, on purpose: the loss must be known to be finite before the
    # update is applied (a non-finite loss updates nothing and stops the run with its last good checkpoint).
    # With several processes it is one all-reduce of a float, so that every process decides alike.
    loss_value = mean_over_processes(float(total) / len(parts), fabric.device)
    if not math.isfinite(loss_value):
        return loss_value  # nothing is updated with it
    if t.clip_grad is not None:
        # Computed and applied on the device, no synchronisation: error_if_nonfinite would read the norm on the
        # host each step. A non-finite gradient makes the weights non-finite, so the next step's loss is too,
        # which stops the run with its last good checkpoint intact.
        fabric.clip_gradients(t.model, t.optimizer, max_norm=t.clip_grad, error_if_nonfinite=False)
    t.optimizer.step()
    ema_update(t.method.momentum_pairs(), float(t.momentum_at[step]))
    return loss_value


def micro_batches(views: list[torch.Tensor], parts: int) -> list[list[torch.Tensor]]:
    """The views of a batch in `parts` equal slices of consecutive images (`train.accumulate`), each slice every
    view of its images."""
    if parts == 1:
        return [views]
    return [list(slices) for slices in zip(*(view.chunk(parts) for view in views), strict=True)]


def _log(t: Training, done: int, lr: float, window: Window, collapse: CollapseWatch, start: float) -> Window:
    """One line of `metrics.jsonl` over the window; warns when the embeddings collapse. Returns a new window."""
    now = time.perf_counter()
    spread, collapsing = collapse.flush()
    evaluating = t.evaluations.seconds - window.evaluated_before
    training = max(now - window.started - evaluating, 1e-9)
    t.metrics.write(
        {
            "step": done,
            "loss": sum(window.losses) / len(window.losses),
            "last_loss": window.losses[-1],
            "lr": lr,
            "embedding_spread": spread,
            "images_per_s": window.images / training,
            "data_wait_share": window.waiting / training,
            "eval_s": evaluating,
            "elapsed_s": now - start,
        }
    )
    if collapsing:
        say(
            t.console,
            ("warning", WARNING),
            f": the embeddings are collapsing at step {done} (spread {spread:.3f} < "
            f"train.collapse_threshold {collapse.threshold}; 1 is evenly spread, 0 is one point): the "
            "representation is losing information; try a lower optim.lr",
        )
    return Window(now, t.evaluations.seconds)
