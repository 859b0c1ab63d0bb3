"""Phase 2 of a run, the build: the same on every process. The starting backbone (the strategy's, adapted,
or the checkpoint's on `--resume`), the method, the run folder, the data, the optimiser, the evaluations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from lightning_fabric import Fabric
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader
from torchvision.utils import save_image

from hpt.backbones import Backbone, batch_norms
from hpt.backbones.adapters import adapter_parameters
from hpt.checkpoints.layouts import load_notes
from hpt.checkpoints.provenance import DataRecord, Origin, Resolved
from hpt.config import OptimConfig, PretrainConfig, available_cores, dump_config
from hpt.core.atomic import write_text_atomic
from hpt.core.environment import current
from hpt.core.global_batch_norm import synchronise_batch_norm
from hpt.core.lars import LARS
from hpt.core.param_groups import param_groups
from hpt.core.run_files import BEST, CHECKPOINT, CONFIG, DATA_FINGERPRINT, METRICS, SKIPPED, TRAIN_LOG, VIEWS
from hpt.core.schedule import cosine_schedule
from hpt.data.dataset import ImageDataset
from hpt.data.device_views import DeviceViews, crop_view
from hpt.data.order import SeededItems, StepBatches
from hpt.data.screen import reasons_by_count, skipped_report
from hpt.data.shards import STATE, ShardStream, StreamBatches, loader_processes, positions_of
from hpt.data.unreadable import UnreadableFiles, UnreadableWatch
from hpt.data.view_grid import view_grid
from hpt.data.views import draft_of, pretrain_view
from hpt.data.window_choice import describe_counts
from hpt.errors import HptError
from hpt.methods import SSLMethod, build_method, syncs_batch_norm
from hpt.train.best import BestBackbone
from hpt.train.callbacks import Callbacks
from hpt.train.checkpoint import Checkpoint, read_checkpoint
from hpt.train.console import BOLD, WARNING, keep_log, say
from hpt.train.evaluations import Evaluations
from hpt.train.guard import RunLock
from hpt.train.loggers import log_image, make_loggers, without_tensorboard
from hpt.train.plan import Plan
from hpt.train.provenance import Provenance
from hpt.train.run_dir import MetricsLog, create_run_dir
from hpt.transfer import adapt_backbone, reestimate_batch_norm
from hpt.transfer.layers import trainable_share


@dataclass
class Training:
    """What the step loop works with."""

    backbone: Backbone
    method: SSLMethod
    model: nn.Module
    """The method as Fabric set it up (wrapped for DDP): the forward pass goes through it."""
    optimizer: torch.optim.Optimizer
    batches: Iterator[Any]
    device_views: DeviceViews | None
    channels_last: bool
    clip_grad: float | None
    """`optim.clip_grad` or the method's own: the gradients' total norm is clipped to it before each step."""
    accumulate: int
    """Micro-batches each step's batch is split into, their gradients summed before the update (`train.accumulate`)."""
    lr_at: np.ndarray
    momentum_at: np.ndarray
    weight_decay_at: np.ndarray
    """The decayed group's weight decay at each step (`optim.weight_decay`, on a cosine to `weight_decay_end`)."""
    metrics: MetricsLog
    evaluations: Evaluations
    unreadable: UnreadableWatch
    """The files found unreadable during training (`data/unreadable.py`)."""
    provenance: Provenance
    """As of the start; the loop and the finish move its step and add adaptations."""
    resumed: Checkpoint | None
    writes: bool
    """This process writes the run's files (rank 0)."""
    console: Console
    stream: StreamBatches | None = None
    """Shards streamed: where each loader process is, for the checkpoint (`data_state`)."""
    callbacks: Callbacks = field(default_factory=Callbacks)
    """The Python caller's hooks (`train/callbacks.py`), called where this process writes."""

    def data_state(self, fabric: Fabric) -> dict[str, torch.Tensor]:
        """What the checkpoint keeps of the data's order beyond the step: every process's stream positions
        (gathered: every process calls this, the first writes it); nothing for a map of files."""
        if self.stream is None:
            return {}
        state = self.stream.state
        gathered = state[None]
        if fabric.world_size > 1:
            gathered = cast(torch.Tensor, fabric.all_gather(state.to(fabric.device))).cpu()
        return {STATE: gathered.reshape(fabric.world_size, *state.shape)}

    @property
    def start_step(self) -> int:
        return self.resumed.steps if self.resumed else 0


def build(fabric: Fabric, plan: Plan, console: Console, lock: RunLock | None = None) -> Training:
    """`lock`: the run folder's, taken here, just before the folder is first changed (`guard.py`)."""
    config, writes = plan.config, fabric.global_rank == 0
    torch.manual_seed(config.train.seed)
    backbone, origin, resumed, adaptations = _starting_point(plan, fabric.device)
    method = build_method(config.method, backbone, config, plan.stats)
    if fabric.world_size > 1 and syncs_batch_norm(config):
        synchronise_batch_norm(method)
    fabric.barrier()  # every process has read what it needs (the checkpoint) before rank 0 changes the folder
    run = _open_run_dir(plan, resumed is not None, lock, writes, console)
    _announce(plan, run, backbone.name, origin, console, writes)
    _say_what_trains(backbone, plan.strategy.name, method, console)

    loader = _loader(fabric, plan, method, resumed)
    optimizer, lr_at, momentum_at, weight_decay_at = _optimiser(method, config)
    channels_last = _channels_last(method, config, fabric.device)
    if config.train.compile:
        backbone.model.compile()  # in place: the state-dict keys stay the library's own
    model, optimizer = fabric.setup(method, optimizer)
    loggers = make_loggers(config.train.loggers, run) if writes else []
    if writes and (fallback := without_tensorboard(config.train.loggers or [])):
        say(console, fallback)
    metrics = MetricsLog(run / METRICS, enabled=writes, loggers=loggers)
    if writes and not resumed:
        _draw_views(plan, run, metrics, console)
    if resumed:
        resumed.restore(method, optimizer)
        metrics.truncate_after(resumed.steps)
        adaptations = resumed.adaptations
        say(console, f"resuming from step {resumed.steps} of {config.train.steps} ({run / CHECKPOINT})")
    batches: Iterator[Any] = iter(fabric.setup_dataloaders(loader, use_distributed_sampler=False))
    stream = None
    if plan.shards is not None:  # where each loader process is, kept for the checkpoint
        stream = batches = StreamBatches(batches, max(loader.num_workers, 1), _positions(plan, resumed, fabric))
    if resumed:
        resumed.restore_rng()

    provenance = _provenance(fabric, plan, backbone.name, origin, adaptations, resumed, method, console)
    selects_by = plan.monitor.selects_by if plan.monitor else None
    latest_tied = config.monitor.pick == "latest-tied"
    best = (
        BestBackbone(run / BEST, selects_by, resumed.steps if resumed else None, latest_tied)
        if selects_by and writes
        else None
    )
    evaluations = Evaluations(
        plan.monitor, method, backbone, run, metrics, best, plan.freeze_statistics, fabric.device, console
    )
    return Training(
        backbone=backbone,
        method=method,
        model=model,
        optimizer=optimizer,
        batches=batches,
        device_views=_device_views(fabric, plan),
        channels_last=channels_last,
        clip_grad=config.gradient_clip,
        accumulate=config.train.accumulate,
        lr_at=lr_at,
        momentum_at=momentum_at,
        weight_decay_at=weight_decay_at,
        metrics=metrics,
        evaluations=evaluations,
        unreadable=UnreadableWatch(
            plan.out / SKIPPED,
            len(plan.found.skipped),
            plan.found.files + len(plan.found.skipped),
            config.data.max_bad_fraction,
            (lambda: stream.images * fabric.world_size) if stream is not None else None,
        ),
        provenance=provenance,
        resumed=resumed,
        writes=writes,
        console=console,
        stream=stream,
    )


def _open_run_dir(plan: Plan, resumed: bool, lock: RunLock | None, writes: bool, console: Console) -> Path:
    """The run folder, created (or kept, resuming) under its lock by the process that writes, its log kept there
    (closed by the loop, however the run ends)."""
    if lock is not None:
        lock.acquire()
    run = create_run_dir(plan.out, continuing=resumed) if writes else plan.out
    if writes:
        keep_log(console, run / TRAIN_LOG)
    if plan.continuing and not resumed:
        say(console, ("note", WARNING), f": --resume: '{run}' holds no checkpoint (it stopped before its first): "
            "started again from step 0")  # fmt: skip
    return run


def _channels_last(method: SSLMethod, config: PretrainConfig, device: torch.device) -> bool:
    """Whether the run computes in channels-last layout (by default on a GPU); the method converted if so."""
    chosen = config.train.channels_last if config.train.channels_last is not None else device.type == "cuda"
    if chosen:
        method.to(memory_format=torch.channels_last)
    return chosen


def _say_what_trains(backbone: Backbone, strategy: str, method: SSLMethod, console: Console) -> None:
    """The share of the backbone that trains where not all of it does (bn-only, norm-only, partial, lora: what the
    step's backward pass updates), and the method's own notes."""
    trained, total = trainable_share(backbone)
    if trained < total:
        adapters = adapter_parameters(backbone.model)
        added = f"; {adapters:,} of them in LoRA adapters, merged into the weights on export" if adapters else ""
        say(console, f"{backbone.name}: {trained:,} of its {total:,} parameters train ({trained / total:.1%}), the "
            f"rest is frozen (init {strategy}){added}")  # fmt: skip
    for note in method.notes():
        say(console, note)


def _provenance(
    fabric: Fabric,
    plan: Plan,
    backbone_name: str,
    origin: Origin,
    adaptations: dict[str, Any],
    resumed: Checkpoint | None,
    method: SSLMethod,
    console: Console,
) -> Provenance:
    """What the run's files will record of where it came from (resumed: carried on from the checkpoint's record),
    with a warning for each input that changed since: the data, a modified file, the environment."""
    config = plan.config
    changed = list(resumed.provenance.data.changed_on_resume) if resumed else []
    if resumed and plan.data_changes:
        changed.append({"at_step": resumed.steps, **plan.data_changes.to_dict()})
        say(
            console,
            ("data changed", WARNING),
            f" since the last attempt: {plan.data_changes.describe()}; continued on the data as it is now "
            "(--allow-data-change), recorded in the provenance",
        )
    data = DataRecord(
        path=config.data.path,
        images=None if plan.shards else len(plan.images),  # a stream: no count of its images is known
        held_out=plan.held_out,
        mean=list(plan.stats.mean),
        std=list(plan.stats.std),
        intensity=plan.decoding.window.to_dict(),
        channels=plan.decoding.channels,
        bands=list(plan.decoding.bands) if plan.decoding.bands else None,
        fingerprint=plan.fingerprint.digest(),
        changed_on_resume=changed,
    )
    steps, wall_time = (resumed.steps, resumed.wall_time_s) if resumed else (0, 0.0)
    earlier = resumed.provenance.resolved.modified_inputs if resumed and resumed.provenance.resolved else []
    resolved = replace(_resolved(fabric, config), modified_inputs=[*earlier, *plan.modified_inputs])
    for used in plan.modified_inputs:
        say(console, ("modified", WARNING), f": {used} no longer matches the sha256 hpt recorded in it; used as "
            "--allow-modified asks, recorded in the provenance")  # fmt: skip
    if resumed is None:
        say(console, resolved.describe())
    environment = current(fabric.device)
    if resumed and resumed.provenance.environment and (changes := resumed.provenance.environment.changes(environment)):
        say(
            console,
            ("another environment", WARNING),
            f" than the one step {resumed.steps} was written in ({'; '.join(changes)}): the run goes on, but not bit "
            "for bit as it would have in its own (this log keeps the change; its files record the new environment)",
        )
    return Provenance(
        config, backbone_name, plan.strategy.name, origin, data, adaptations, steps, wall_time, resolved,
        method.teacher_origin, environment,
    )  # fmt: skip


def _starting_point(plan: Plan, device: torch.device) -> tuple[Backbone, Origin, Checkpoint | None, dict[str, Any]]:
    """The strategy's backbone with its origin; on `--resume` the checkpoint it continues from (its weights
    are loaded once the method is set up), else the adaptations made to the copied base (and, from scratch,
    the BatchNorm statistics estimated on the target), and their record."""
    config = plan.config
    backbone, origin = plan.strategy.init(config.model, plan.decoding.channels)
    backbone.check_image_size(config.data.image_size, "data.image_size")
    resumed = read_checkpoint(plan.out, allow_modified=bool(plan.modified_inputs)) if plan.continuing else None
    adaptations: dict[str, Any] = {}
    if resumed is None:
        adaptations = adapt_backbone(backbone, config.transfer, plan.target_sample, config.train.seed)
        held = "frozen at the starting point's" if plan.freeze_statistics else None
        estimates = plan.strategy.estimate_batch_norm_first and config.transfer.estimate_batch_norm_first
        if estimates and batch_norms(backbone):
            seen = reestimate_batch_norm(backbone.to(device), plan.target_sample(), device)
            adaptations["batch_norm_statistics"] = f"estimated on {seen} target images before step 0"
            held = f"{adaptations['batch_norm_statistics']}, then frozen" if held else None
        if held:
            adaptations["batch_norm_statistics"] = held
    return backbone, origin, resumed, adaptations


def _resolved(fabric: Fabric, config: PretrainConfig) -> Resolved:
    """What the run resolved of its config (`Provenance.resolved`)."""
    return Resolved(
        lr=config.scaled_learning_rate,
        lr_rule=config.learning_rate_rule(),
        precision=config.train.precision,
        processes=fabric.world_size,
        device=fabric.device.type,
        batch_per_process=config.train.batch_size // fabric.world_size,
        accumulate=config.train.accumulate,
    )


OPTIMISERS: dict[str, Callable[[list[dict[str, Any]], float, OptimConfig], torch.optim.Optimizer]] = {
    "sgd": lambda groups, lr, optim: torch.optim.SGD(groups, lr=lr, momentum=optim.momentum),
    "adamw": lambda groups, lr, optim: torch.optim.AdamW(groups, lr=lr),  # each group's own weight decay
    "lars": lambda groups, lr, optim: LARS(groups, lr=lr, momentum=optim.momentum),
}
"""`optim.name` -> the optimiser over `param_groups` (decay and no-decay groups) at the scaled learning rate."""


def _optimiser(
    method: SSLMethod, config: PretrainConfig
) -> tuple[torch.optim.Optimizer, np.ndarray, np.ndarray, np.ndarray]:
    """`optim.name`'s optimiser, the learning rate scaled linearly with the (global) batch and on a cosine to 0;
    the method's EMA momentum on a cosine; the weight decay constant, or on a cosine to `optim.weight_decay_end`
    (as DINO's `cosine_scheduler` for it, without warm-up, but reaching the end value at the last step where
    DINO's stops one step short). The schedules are indexed by step."""
    steps, base_lr, optim = config.train.steps, config.scaled_learning_rate, config.optim
    lr_at = cosine_schedule(base_lr, 0.0, steps, optim.warmup_steps)
    momentum_at = cosine_schedule(*method.momentum, steps, reach_end=True)
    decay_end = optim.weight_decay if optim.weight_decay_end is None else optim.weight_decay_end
    weight_decay_at = cosine_schedule(optim.weight_decay, decay_end, steps, reach_end=True)
    groups = param_groups(method, optim.weight_decay)
    return OPTIMISERS[optim.name](groups, base_lr, optim), lr_at, momentum_at, weight_decay_at


def _positions(plan: Plan, resumed: Checkpoint | None, fabric: Fabric) -> dict[int, tuple[int, int]]:
    """Where this process's loader processes were at the checkpoint resumed from; one line when they were
    another number (a stream's batches depend on it)."""
    state = resumed.tensors.get(STATE) if resumed else None
    if state is None or plan.shards is None:
        return {}
    asked = plan.config.data.num_workers
    workers = max(1, loader_processes(plan.shards, fabric.world_size, asked) if asked else 1)
    if tuple(state.shape[:2]) != (fabric.world_size, workers):
        raise HptError(
            f"--resume: this run streamed its shards with {state.shape[1]} loader processes in each of "
            f"{state.shape[0]} processes, and would now with {workers} in each of {fabric.world_size}: the batches "
            "depend on them; resume with data.num_workers and the devices it started with"
        )
    return positions_of(state, fabric.global_rank)


def _training_view(
    plan: Plan, size: int | None = None, scale: tuple[float, float] | None = None, on_device: bool = False
) -> Any:
    """A training view, by default at the run's size and crop scale: the view policy in the data's statistics,
    or with `on_device` only its crop (the rest runs in batches on the device)."""
    config, stats = plan.config, plan.stats
    size, scale = size or config.data.image_size, scale or (config.views.crop_min_scale, 1.0)
    if on_device:
        return crop_view(size, scale)
    return pretrain_view(config.views.policy, size, stats.mean, stats.std, scale)


def _draw_views(plan: Plan, run: Path, metrics: MetricsLog, console: Console) -> None:
    """`views.png` and TensorBoard's `views`: a few images beside two of their training views."""
    config, stats, decoding = plan.config, plan.stats, plan.decoding
    if not config.train.view_grid:
        say(console, f"no {VIEWS}: train.view_grid is 0")
        return
    view, count, seed = _training_view(plan), config.train.view_grid, config.train.seed
    grid, drawn = view_grid(plan.images, decoding, view, count, seed, stats.mean, stats.std, plan.preview)
    save_image(grid, run / VIEWS)
    log_image(metrics.loggers, "views", grid)
    shown = ""
    if decoding.channels != 3:
        taken = decoding.bands or tuple(range(1, decoding.channels + 1))
        channels = plan.preview or ((0, 1, 2) if decoding.channels >= 3 else (0,))
        names = [str(taken[c]) for c in channels]
        shown = f" (bands {', '.join(names)} as red, green, blue)" if len(names) == 3 else f" (band {names[0]}, grey)"
    say(console, f"{drawn} image{'s' if drawn != 1 else ''} beside two of their training views{shown}: {run / VIEWS}")


def _device_views(fabric: Fabric, plan: Plan) -> DeviceViews | None:
    """With `views.on_device`, the part of the views that runs in batches on the training device."""
    config = plan.config
    if not config.views.on_device:
        return None
    return DeviceViews(
        config.views.policy,
        plan.stats.mean,
        plan.stats.std,
        config.train.seed,
        config.train.batch_size,
        fabric.global_rank,
        fabric.world_size,
    )


def _announce(plan: Plan, run: Path, backbone: str, origin: Origin, console: Console, writes: bool) -> None:
    """The run's config and skipped files into the folder; what is about to happen onto the console."""
    images = plan.images
    if writes:
        dump_config(plan.config, run / CONFIG)
        plan.fingerprint.write(run / DATA_FINGERPRINT)
    if images.skipped and writes:
        write_text_atomic(run / SKIPPED, skipped_report(images.skipped))
        say(
            console,
            (f"skipped {len(images.skipped)} unusable files", WARNING),
            f" of {plan.found.files + len(images.skipped)} files ({reasons_by_count(images.skipped)}): listed in "
            f"{run / SKIPPED}",
        )
    say(
        console,
        ("hpt pretrain", BOLD),
        f": {plan.config.method} on {backbone}, init {plan.strategy.name} "
        f"from {origin.spec or 'random weights'}; {_what_trains(plan)} -> {run}",
    )
    for note in load_notes(origin.load_report):
        say(console, f"base {origin.spec}: {note}")
    if plan.monitor is not None and plan.monitor.labelled is not None:
        say(console, plan.monitor.labelled.describe())
    if plan.held_out:
        say(console, f"{plan.held_out} images held out of training: the label-free pick's sample (view retrieval)")
    if len(plan.modalities) > 1:
        say(console, f"DICOM files of {len(plan.modalities)} modalities: {describe_counts(plan.modalities)}")
    window = plan.decoding.window
    if window.mode != "full-range" or window.source == "data.intensity":
        say(console, f"high-bit images: {window.describe()}")
    workers, on_device = plan.config.data.num_workers, plan.config.views.on_device
    say(
        console,
        f"{workers} loader processes (data.num_workers; this process may use {available_cores()} cores); the views "
        + ("cropped there, the rest made on the training device (views.on_device)" if on_device else "made there"),
    )
    if plan.decoding.channels != 3:
        bands = plan.decoding.channels
        say(console, f"{bands}-band images: the backbone's first convolution takes {bands} channels")


def _what_trains(plan: Plan) -> str:
    if plan.shards is None:
        return f"{len(plan.images)} images"
    units = "image files" if plan.shards.files else "shards"
    return f"{len(plan.shards)} {units}, streamed (measured on a sample of {len(plan.images)} of their images)"


def _loader(fabric: Fabric, plan: Plan, method: SSLMethod, resumed: Checkpoint | None) -> DataLoader:
    """The method's views of the training images, batches in the seeded order from the step resumed at on, this
    process's slice of each. With `views.on_device` only the crop happens here, the rest on the device. Shards
    stream (`data/shards.py`), each loader process from where the checkpoint says it was."""
    config, start_step = plan.config, resumed.steps if resumed else 0
    make_view = partial(_training_view, plan, on_device=config.views.on_device)
    views = method.views(make_view)
    decoding = replace(plan.decoding, draft=draft_of(views))  # large JPEGs decoded at a scale their crops allow
    if plan.shards is not None:
        asked = config.data.num_workers
        workers = loader_processes(plan.shards, fabric.world_size, asked)
        stream = ShardStream(
            plan.shards, views, decoding, config.train.seed, plan.out / SKIPPED, fabric.global_rank,
            fabric.world_size, workers, start_step, _positions(plan, resumed, fabric), config.data.shuffle_buffer,
        )  # fmt: skip
        return DataLoader(
            stream,
            batch_size=config.train.batch_size // fabric.world_size,
            num_workers=workers if asked else 0,
            persistent_workers=bool(asked),
            pin_memory=fabric.device.type == "cuda",
            generator=torch.Generator().manual_seed(config.train.seed),  # not the global RNG the steps draw from
        )

    workers, seed, batch_size = config.data.num_workers, config.train.seed, config.train.batch_size
    sampler = StepBatches(len(plan.images), batch_size, seed, start_step, fabric.global_rank, fabric.world_size)
    return DataLoader(
        SeededItems(ImageDataset(plan.images, views, decoding, UnreadableFiles(plan.out / SKIPPED))),
        num_workers=workers,
        batch_sampler=sampler,
        persistent_workers=workers > 0,
        pin_memory=fabric.device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )
