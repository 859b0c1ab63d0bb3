"""The one training loop: any method, any initialisation, counted in steps, on Lightning Fabric.

Reads like a recipe: inputs (checked before anything is written) -> processes -> data -> model ->
optimisation -> the loop -> export. It runs on a laptop CPU without a process group; Fabric carries the same
code to a GPU and to DDP over several (`train/launch.py`), where rank 0 alone writes files.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from lightning_fabric import Fabric
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

import hpt
from hpt.checkpoints.files import read_provenance, read_tensors, save_tensors, sha256_file, write_text_atomic
from hpt.config import PretrainConfig, dump_config
from hpt.core.distributed import broadcast_from_first, mean_over_processes
from hpt.core.ema import ema_update
from hpt.core.global_batch_norm import synchronise_batch_norm
from hpt.core.param_groups import param_groups
from hpt.core.run_files import BACKBONE, BEST, CHECKPOINT, CONFIG, METRICS, SKIPPED, read_monitor
from hpt.core.schedule import cosine_schedule
from hpt.data.dataset import ImageDataset, sample_batches
from hpt.data.device_views import DeviceViews, crop_view
from hpt.data.files import find_images
from hpt.data.order import SeededItems, StepBatches
from hpt.data.screen import ScreenPolicy, skipped_report
from hpt.data.stats import PixelStats, pixel_stats
from hpt.data.views import eval_view, pretrain_view
from hpt.errors import HptError
from hpt.eval.monitor import build_monitor, hold_out
from hpt.methods import SSLMethod, build_method, syncs_batch_norm
from hpt.train.best import BestBackbone
from hpt.train.health import CollapseWatch, all_finite
from hpt.train.launch import make_fabric, processes_stopped_on_failure
from hpt.train.run_dir import MetricsLog, check_run_dir, create_run_dir
from hpt.transfer import adapt_backbone, check_strategy, init_backbone, reestimate_batch_norm, resolve_init
from hpt.transfer.frozen_statistics import freezes_batch_norm_statistics, hold_batch_norm_statistics

OPTIMIZER_PREFIX = "optimizer."
RNG_PREFIX = "rng."


@dataclass(frozen=True)
class RunSummary:
    run: Path
    steps: int
    final_loss: float
    wall_time_s: float


def pretrain(config: PretrainConfig, out: Path, overwrite: bool = False, resume: bool = False,
             console: Console | None = None) -> RunSummary:
    if config.data.path is None:
        raise HptError("no data: pass --data DIR (a folder of images or a file list)")
    fabric = make_fabric(config.train, unused_parameters=config.method == "swav")
    with processes_stopped_on_failure(fabric):
        return _pretrain(fabric, config, out, overwrite, resume, console)


def _pretrain(fabric: Fabric, config: PretrainConfig, out: Path, overwrite: bool, resume: bool,
              console: Console | None) -> RunSummary:
    writes = fabric.global_rank == 0  # every process computes; one writes
    console = console or Console(stderr=True, log_path=False)
    if not writes:
        console = Console(stderr=True, quiet=True)

    # ---- inputs: everything that can be wrong fails here, before a process is started or a file written -
    found = find_images(config.data.path, policy=ScreenPolicy.of(config.data))
    batch_size, steps, seed = config.train.batch_size, config.train.steps, config.train.seed
    images, held_out = hold_out(found, config.monitor, batch_size, seed)
    if len(images) < batch_size:
        raise HptError(f"data '{config.data.path}' has {len(images)} images to train on, fewer than the batch size "
                       f"{batch_size}")
    strategy = check_strategy(config.model, config.transfer)
    stats = pixel_stats(found, config.data.image_size, config.data.stats_sample)
    measure_view = eval_view(config.data.image_size, stats.mean, stats.std)
    monitor = build_monitor(config.monitor, config.data.image_size, batch_size, held_out, measure_view)
    continuing = check_run_dir(out, config, overwrite, resume)

    # ---- processes: from here on every process runs the same code on its slice of each batch -------------
    fabric.launch()
    torch.manual_seed(seed)
    backbone, origin = init_backbone(config.model)
    init = resolve_init(config.model)

    def target_sample():
        return sample_batches(images, measure_view, config.transfer.target_sample, batch_size, seed)

    resumed = _read_resumable(out / CHECKPOINT) if continuing else None
    adaptations = adapt_backbone(backbone, config.transfer, target_sample, seed) if resumed is None else {}
    freeze_statistics = freezes_batch_norm_statistics(config.transfer, init)
    if freeze_statistics and resumed is None:
        adaptations["batch_norm_statistics"] = "frozen at the starting point's"
    method = build_method(config.method, backbone, config)
    if fabric.world_size > 1 and syncs_batch_norm(config):
        synchronise_batch_norm(method)
    fabric.barrier()  # every process has read what it needs (the checkpoint) before rank 0 changes the folder
    run = create_run_dir(out, continuing=resumed is not None) if writes else out
    if writes:
        dump_config(config, run / CONFIG)
    if images.skipped and writes:
        write_text_atomic(run / SKIPPED, skipped_report(images.skipped))
        console.log(f"[yellow]skipped {len(images.skipped)} unusable files[/] of {len(images) + len(images.skipped)}: "
                    f"listed in {run / SKIPPED}")
    console.log(f"[bold]hpt pretrain[/]: {config.method} on {backbone.name}, init {init} "
                f"from {origin.get('spec') or 'random weights'}; {len(images)} images -> {run}")
    if len(found) > len(images):
        console.log(f"{len(found) - len(images)} images held out of training for the label-free monitor (RankMe)")

    # ---- data: the dataset's own statistics, the method's views ------------------------------------------
    def make_view(size: int | None = None, scale: tuple[float, float] | None = None):
        size, scale = size or config.data.image_size, scale or (config.views.crop_min_scale, 1.0)
        if config.views.on_device:
            return crop_view(size, scale)  # the rest in batches on the device: device_views below
        return pretrain_view(config.views.policy, size, stats.mean, stats.std, scale)

    device_views = DeviceViews(config.views.policy, stats.mean, stats.std, seed, batch_size, fabric.global_rank,
                               fabric.world_size) if config.views.on_device else None

    workers, on_gpu = config.data.num_workers, fabric.device.type == "cuda"
    start_step = resumed[1]["steps"] if resumed else 0
    prior_wall_time = resumed[1]["wall_time_s"] if resumed else 0.0
    sampler = StepBatches(len(images), batch_size, seed, start_step, fabric.global_rank, fabric.world_size)
    loader = DataLoader(SeededItems(ImageDataset(images, method.views(make_view))), num_workers=workers,
                        batch_sampler=sampler, persistent_workers=workers > 0, pin_memory=on_gpu,
                        generator=torch.Generator().manual_seed(seed))

    # ---- optimisation: SGD, lr scaled linearly with the (global) batch, cosine to 0 ----------------------
    base_lr = config.optim.lr * batch_size / 256
    lr_at = cosine_schedule(base_lr, 0.0, steps, config.optim.warmup_steps)
    momentum_at = cosine_schedule(*method.momentum, steps, reach_end=True)
    optimizer = torch.optim.SGD(param_groups(method, config.optim.weight_decay), lr=base_lr,
                                momentum=config.optim.momentum)
    channels_last = config.train.channels_last if config.train.channels_last is not None else on_gpu
    if channels_last:
        method.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if config.train.compile:
        backbone.model.compile()  # in place: the state-dict keys stay the library's own
    model, optimizer = fabric.setup(method, optimizer)
    metrics = MetricsLog(run / METRICS, enabled=writes)
    if resumed:
        _restore(method, optimizer, resumed[0])
        metrics.truncate_after(start_step)
        adaptations = resumed[1].get("adaptations", {})
        console.log(f"resuming from step {start_step} of {steps} ({run / CHECKPOINT})")
    batches = iter(fabric.setup_dataloaders(loader, use_distributed_sampler=False))
    if resumed:
        _restore_rng(resumed[0])  # last, so that nothing in the set-up above shifts what the steps draw

    selects_by = monitor.selects_by if monitor else None
    best = BestBackbone(run / BEST, selects_by, start_step if resumed else None) if selects_by and writes else None

    def provenance(done: int, wall_time: float) -> dict[str, Any]:
        return _provenance(config, backbone.name, init, origin, stats, len(images), len(found) - len(images),
                           adaptations, done, wall_time)

    def evaluate(done: int, wall_time: float) -> None:
        if monitor is None:
            return
        if not all_finite(method.parameters()):
            raise _unhealthy("the weights became non-finite", done, run)
        broadcast_from_first(list(backbone.buffers()))  # BatchNorm statistics: those rank 0 saves
        scores = monitor(backbone, fabric.device)
        metrics.write({"step": done, "monitor": selects_by or "unlabelled", **scores})
        kept = best is not None and best.offer(done, scores, backbone, provenance(done, wall_time))
        console.log(f"step {done}: " + "  ".join(f"{name} {value:.4f}" for name, value in scores.items())
                    + ("  (best so far)" if kept and done > 0 else ""))
        hold_statistics()  # the evaluation put the backbone back in train mode

    def hold_statistics() -> None:
        if freeze_statistics:
            hold_batch_norm_statistics(method)

    # ---- the loop ----------------------------------------------------------------------------------------
    start = time.perf_counter()
    window_start, window_images, window_losses, window_waiting = start, 0, [], 0.0
    collapse = CollapseWatch(config.train.collapse_threshold)
    loss_value = math.nan
    done = start_step
    hold_statistics()
    if not resumed:
        evaluate(0, prior_wall_time)  # step 0 is a data point: the starting point as it is
    progress = Progress(TextColumn("[bold]pretrain"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(), console=console,
                        disable=not console.is_terminal)
    announce_every = max(config.train.log_every, steps // 10)
    monitor_every = config.monitor.interval(steps)
    with progress:
        task = progress.add_task("pretrain", total=steps, completed=start_step, loss=math.nan)
        for step in range(start_step, steps):
            waiting_since = time.perf_counter()
            views, _ = next(batches)
            window_waiting += time.perf_counter() - waiting_since
            if device_views is not None:
                views = device_views(views, step)
            if channels_last:
                views = [view.contiguous(memory_format=torch.channels_last) for view in views]
            for group in optimizer.param_groups:
                group["lr"] = float(lr_at[step])
            method.on_step(step)
            loss, embeddings = model(views)
            loss_value = mean_over_processes(float(loss.detach()), fabric.device)  # the same on every process
            if not math.isfinite(loss_value):
                raise _unhealthy(f"the loss became {loss_value}", step + 1, run)
            collapse.add(embeddings)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            ema_update(method.momentum_pairs(), float(momentum_at[step]))
            window_images += batch_size
            window_losses.append(loss_value)

            done = step + 1
            progress.update(task, advance=1, loss=loss_value)
            if done % config.train.log_every == 0 or done == steps:
                now = time.perf_counter()
                spread, collapsing = collapse.flush()
                metrics.write({"step": done, "loss": sum(window_losses) / len(window_losses), "last_loss": loss_value,
                               "lr": float(lr_at[step]), "embedding_spread": spread,
                               "images_per_s": window_images / (now - window_start),
                               "data_wait_share": window_waiting / (now - window_start), "elapsed_s": now - start})
                window_start, window_images, window_losses, window_waiting = now, 0, [], 0.0
                if collapsing:
                    console.log(f"[yellow]warning[/]: the embeddings are collapsing at step {done} (spread {spread:.3f}"
                                f" < train.collapse_threshold {collapse.threshold}; 1 is evenly spread, 0 is one point)"
                                ": the representation is losing information; try a lower optim.lr")
            if not console.is_terminal and (done % announce_every == 0 or done == steps):
                console.log(f"step {done}/{steps}  loss {loss_value:.4f}  lr {lr_at[step]:.2e}")
            if monitor_every and done % monitor_every == 0 and done < steps:
                evaluate(done, prior_wall_time + time.perf_counter() - start)
            if done % config.train.checkpoint_every == 0 and done < steps:
                _save_checkpoint(run, method, optimizer, provenance(done, prior_wall_time + time.perf_counter() - start),
                                 writes)

    # ---- finish: HPT-BN re-estimates BN statistics on the target; then export ----------------------------
    if strategy.reestimate_batch_norm and config.transfer.reestimate_batch_norm and not freeze_statistics:
        seen = reestimate_batch_norm(backbone, target_sample(), fabric.device)
        adaptations["batch_norm_reestimated_on"] = seen
    evaluate(done, prior_wall_time + time.perf_counter() - start)
    wall_time = prior_wall_time + time.perf_counter() - start
    _save_checkpoint(run, method, optimizer, provenance(done, wall_time), writes)
    if not writes:
        fabric.barrier()  # rank 0 exports
        return RunSummary(run, done, loss_value, wall_time)
    parent = {"path": str((run / CHECKPOINT).resolve()), "sha256": sha256_file(run / CHECKPOINT)}
    evaluations = read_monitor(run)
    exported, selected = backbone.native_state_dict(), {"step": done, "by": "last"}
    if best is not None and best.best is not None and config.monitor.export == "best":
        exported, selected = best.tensors(), best.best
        _say_what_was_selected(console, selected, evaluations, done)
    elif best is None and origin.get("spec") and done > 0:
        console.log("[yellow]note[/]: without labelled monitor splits hpt cannot tell whether this backbone beats its "
                    "starting point (the label-free RankMe is logged, but ranked checkpoints backwards on the "
                    "benchmark targets); give --monitor-train and --monitor-test to keep the best")
    save_tensors(run / BACKBONE, exported, {**provenance(done, wall_time), "format": "hpt-backbone", "parent": parent,
                                            "selected": selected, "monitor": evaluations})
    console.log(f"done: {done} steps in {wall_time:.1f}s, final loss {loss_value:.4f}; backbone of step "
                f"{selected['step']} -> {run / BACKBONE}")
    fabric.barrier()
    return RunSummary(run, done, loss_value, wall_time)


def _say_what_was_selected(console: Console, selected: dict[str, Any], evaluations: list[dict[str, Any]],
                           done: int) -> None:
    by, at_end = selected["by"], next((e for e in reversed(evaluations) if e["step"] == done), None)
    end = f"{at_end[by]:.4f} at the end" if at_end else "the end not evaluated"
    if selected["step"] == 0 and done > 0:
        console.log(f"[yellow]warning[/]: no evaluation beat the starting point by {by} ({selected['value']:.4f} at "
                    f"step 0, {end}); backbone.safetensors holds the starting point (monitor.export=last: the "
                    "last step)")
    elif selected["step"] != done:
        console.log(f"backbone.safetensors holds step {selected['step']}, the best by {by} ({selected['value']:.4f}; "
                    f"{end})")


def _unhealthy(what: str, step: int, run: Path) -> HptError:
    last = read_provenance(run / CHECKPOINT) if (run / CHECKPOINT).is_file() else None
    kept = f"the last good checkpoint (step {last['steps']}) is intact in '{run / CHECKPOINT}'" if last else \
        "no checkpoint had been written yet"
    return HptError(f"{what} at step {step}; {kept}; start again with a lower learning rate (optim.lr)")


def _save_checkpoint(run: Path, method: SSLMethod, optimizer: torch.optim.Optimizer, provenance: dict[str, Any],
                     writes: bool = True) -> None:
    """Only healthy weights are saved: a non-finite parameter stops the run (every process: their weights are
    the same) and leaves the last checkpoint; `writes`: this is the process that writes.

    Everything `--resume` continues from: the method's whole state (backbone, heads, momentum encoder,
    queue, prototypes), the optimiser's momentum buffers and the RNG states. The step (in the provenance) is
    the rest: learning rate, EMA momentum and data order are functions of it."""
    if not all_finite(method.parameters()):
        raise _unhealthy("the weights became non-finite", provenance["steps"], run)
    if not writes:
        return
    tensors = dict(method.state_dict())
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{name}"] = value
    tensors[f"{RNG_PREFIX}cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{RNG_PREFIX}cuda.{index}"] = state
    save_tensors(run / CHECKPOINT, tensors, {**provenance, "format": "hpt-checkpoint"})


def _read_resumable(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    if not path.is_file():
        return None
    tensors, provenance = read_tensors(path)
    if not provenance or provenance.get("format") != "hpt-checkpoint":
        raise HptError(f"--resume: '{path}' is not an hpt checkpoint")
    return tensors, provenance


def _restore(method: SSLMethod, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    method.load_state_dict({k: v for k, v in tensors.items() if not k.startswith((OPTIMIZER_PREFIX, RNG_PREFIX))},
                           strict=True)
    state = optimizer.state_dict()
    restored: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIMIZER_PREFIX):
            index, name = key[len(OPTIMIZER_PREFIX):].split(".", 1)
            restored.setdefault(int(index), {})[name] = value
    state["state"] = restored
    optimizer.load_state_dict(state)


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    if f"{RNG_PREFIX}cpu" in tensors:  # checkpoints written before RNG states were saved
        torch.set_rng_state(tensors[f"{RNG_PREFIX}cpu"])
    cuda = sorted((k for k in tensors if k.startswith(f"{RNG_PREFIX}cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])


def _provenance(config: PretrainConfig, backbone: str, init: str, origin: dict[str, Any], stats: PixelStats,
                num_images: int, held_out: int, adaptations: dict[str, Any], steps: int,
                wall_time: float) -> dict[str, Any]:
    """Everything needed to trace a file back to its base and to remake it."""
    base_parent = {"path": origin.get("path") or origin.get("spec"), "sha256": origin.get("sha256")}
    return {
        "hpt_version": hpt.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": backbone,
        "method": config.method,
        "init": init,
        "steps": steps,
        "wall_time_s": round(wall_time, 3),
        "data": {"path": config.data.path, "images": num_images, "held_out": held_out, "mean": stats.mean,
                 "std": stats.std},
        "adaptations": adaptations,
        "base": origin,
        "parent": base_parent if origin.get("spec") else None,
        "config": config.to_dict(),
    }
