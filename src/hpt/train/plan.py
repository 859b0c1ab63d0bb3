"""Phase 1 of a run, the plan: every input resolved and checked once, before a process is started or a file
written. Everything that can be wrong with the data, the strategy, the monitor or the output folder fails
here, with one line that names it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hpt.checkpoints.files import modified_since_written
from hpt.checkpoints.sources import modified_file, refuse_modified
from hpt.config import PretrainConfig, resolve_paths
from hpt.core.run_files import BEST, CHECKPOINT, DATA_FINGERPRINT, SKIPPED
from hpt.data.bands import dataset_channels
from hpt.data.dataset import sample_batches
from hpt.data.decode import Decoding
from hpt.data.files import ImageList, find_images
from hpt.data.fingerprint import DataChanges, DataFingerprint
from hpt.data.screen import ScreenPolicy, TooManyUnusable, dicom_headers
from hpt.data.shards import SAMPLE, Shards, find_shards, is_sharded, sample_folder
from hpt.data.stats import STD_FLOOR, PixelStats, pixel_stats
from hpt.data.unreadable import UnreadableFiles
from hpt.data.view_grid import preview_channels
from hpt.data.views import eval_view, pretrain_view
from hpt.data.window_choice import resolve_window
from hpt.errors import HptError
from hpt.eval.monitor import Monitor, build_monitor, hold_out
from hpt.extras import require
from hpt.train.guard import StopRequests
from hpt.train.loggers import check_loggers
from hpt.train.precheck import NO_DATA
from hpt.train.run_dir import check_run_dir, refusal_report
from hpt.transfer import Strategy, check_strategy
from hpt.transfer.frozen_statistics import freezes_batch_norm_statistics


@dataclass(frozen=True)
class Plan:
    config: PretrainConfig
    out: Path
    found: ImageList
    """Every usable image of `data.path`."""
    images: ImageList
    """Those trained on: `found` less the label-free monitor's held-out sample, if it picks the backbone."""
    decoding: Decoding
    """How files become pixels (`data/decode.py`: intensity window, bands): training, statistics, monitor alike."""
    stats: PixelStats
    measure_view: Callable[[Any], torch.Tensor]
    """The evaluation view in the data's own statistics: what the monitor and the adaptations measure with."""
    monitor: Monitor | None
    strategy: Strategy
    freeze_statistics: bool
    continuing: bool
    """The folder holds an earlier attempt of this same run (`--resume`)."""
    fingerprint: DataFingerprint
    """The data as it is now (`data/fingerprint.py`): what `data.json` records."""
    preview: tuple[int, ...] | None
    """The channels `views.png` draws as red, green and blue (`data.preview_bands`); None: the first three."""
    modalities: Counter[str]
    """The data's DICOM files by modality (none: not DICOM), said on the console when they are several."""
    data_changes: DataChanges | None = None
    """On `--resume --allow-data-change`: how the data differs from what the earlier attempts trained on."""
    shards: Shards | None = None
    """Tar shards the run streams (`data/shards.py`); then `found` and `images` are a sample of them, what the
    statistics, the window and the pictures are made of."""
    modified_inputs: list[str] = field(default_factory=list)
    """Files used though modified since hpt wrote them (`--allow-modified`): `ROLE 'PATH'`, for the provenance."""

    @property
    def held_out(self) -> int:
        return len(self.found) - len(self.images)

    def target_sample(self) -> Iterator[torch.Tensor]:
        """A fixed sample of the target (`transfer.target_sample` images) in the measuring view."""
        config = self.config
        return sample_batches(
            self.images,
            self.measure_view,
            config.transfer.target_sample,
            config.train.batch_size,
            config.train.seed,
            self.decoding,
            UnreadableFiles(self.out / SKIPPED),  # a file changed since screening: listed, another stands in
        )


def plan_run(
    config: PretrainConfig, out: Path, overwrite: bool, resume: bool, allow_data_change: bool = False,
    allow_modified: bool = False,
) -> Plan:  # fmt: skip
    try:
        return _plan_run(config, out, overwrite, resume, allow_data_change, allow_modified)
    except TooManyUnusable as refused:  # every unusable file listed where the run would have been
        raise refused.listed_in(refusal_report(out)) from None


def _screened(config: PretrainConfig, path: str) -> tuple[Shards | None, ImageList]:
    """The shards (None for a folder or a list) and the images screened: a folder's or list's every image; of
    shards, a sample (measured on it, trained on the shards as they stream: `shards.py`)."""
    shards = find_shards(path) if is_sharded(path) else None
    if shards is None:
        return None, find_images(path, policy=ScreenPolicy.of(config.data))
    if config.monitor.label_free_pick:
        raise HptError(
            "monitor.label_free_pick holds images out of training, which shards streamed whole cannot: set "
            "monitor.label_free_pick false (the label-free scores are still logged), or give a folder"
        )
    sample = sample_folder(shards, config.train.seed, min(SAMPLE, config.data.stats_sample))
    return shards, find_images(sample, f"a sample of data '{path}'", ScreenPolicy.of(config.data))


def _data_changes(out: Path, fingerprint: DataFingerprint, allowed: bool) -> DataChanges | None:
    """On --resume: how the data changed since the run began (None: not at all), refused unless `allowed`."""
    then = DataFingerprint.read(out / DATA_FINGERPRINT)
    changes = then.changes_to(fingerprint) if then else None
    if changes and not allowed:
        raise HptError(
            f"--resume: the data changed since '{out}' was started: {changes.describe()}; resumed on it, the run "
            "would no longer be the one it was. Pass --allow-data-change to continue on the data as it is now "
            "(recorded in the run's provenance), or start a new --out"
        )
    return changes


def _checked_first(config: PretrainConfig, allow_modified: bool) -> list[tuple[str, Path]]:
    """What is refused before the data is screened (seconds to minutes) and the base loaded: a base or teacher
    modified since hpt wrote it (returned, for the provenance), a signal, logger or extra that is not there, no
    data."""
    teacher = config.distill.teacher if config.method == "distill" else None
    inputs = [(role, path) for role, spec in (("--base", config.model.base), ("--teacher", teacher))
              if (path := modified_file(spec))]  # fmt: skip
    refuse_modified(inputs, allow_modified)
    StopRequests(config.train.stop_signals)  # the signal names
    check_loggers(config.train.loggers)
    if config.model.init == "lora":
        require("lora", "--init lora")
    if config.data.path is None:
        raise HptError(NO_DATA)
    return inputs


def _plan_run(
    config: PretrainConfig, out: Path, overwrite: bool, resume: bool, allow_data_change: bool, allow_modified: bool
) -> Plan:
    config = resolve_paths(config)  # recorded absolute: the same folder named two ways is the same run
    inputs = _checked_first(config, allow_modified)
    assert config.data.path is not None  # checked first
    shards, found = _screened(config, config.data.path)
    bands = tuple(config.data.bands) if config.data.bands else None
    channels, other_bands = dataset_channels(found.paths, config.data.channels, f"data '{config.data.path}'", bands)
    found = found.without(other_bands) if other_bands else found
    if channels != 3 and config.views.on_device:
        raise HptError(
            f"views.on_device makes RGB views; data '{config.data.path}' has {channels}-band images: "
            "set views.on_device false (the CPU views handle any number of bands)"
        )
    batch_size = config.train.batch_size
    images, held_out = hold_out(found, config.monitor, batch_size, config.train.seed)
    if shards is None and len(images) < batch_size:
        raise HptError(
            f"data '{config.data.path}' has {len(images)} images to train on, fewer than the batch size {batch_size}"
        )
    strategy = check_strategy(config.model, config.transfer)
    data = config.data
    window = resolve_window(found, data.intensity, config.train.seed, data.nan_fill, bands, data.mixed_modalities)
    decoding = Decoding(window, channels, bands)
    preview = preview_channels(config.data.preview_bands, decoding)
    found_modalities = Counter(header.modality for header in dicom_headers(found.paths, found.stats).values())
    stats = pixel_stats(found, config.data.image_size, config.data.stats_sample, decoding=decoding)
    if stats.unreadable:  # changed since they were screened: skipped and listed like screening's finds
        found, images = found.without(stats.unreadable), images.without(stats.unreadable)
    if stats.flat:
        raise HptError(
            f"data '{config.data.path}': every sampled image has one value in every pixel (pixel std under "
            f"{STD_FLOOR} in every channel, after the {decoding.window.describe()}): there is nothing to learn"
        )
    measure_view = eval_view(config.data.image_size, stats.mean, stats.std)
    pair_view = (
        pretrain_view(
            config.views.policy, config.data.image_size, stats.mean, stats.std, (config.views.crop_min_scale, 1.0)
        )
        if config.monitor.label_free_criteria or config.monitor.label_free_pick
        else None
    )
    monitor = build_monitor(
        config.monitor, config.data.image_size, batch_size, held_out, measure_view, decoding, pair_view,
        config.train.seed, stats, config.data.num_workers,
    )  # fmt: skip
    continuing = check_run_dir(out, config, overwrite, resume)
    for role, name in (("checkpoint", CHECKPOINT), ("best backbone so far", BEST)):  # best: what the finish exports
        if continuing and (out / name).is_file() and modified_since_written(out / name):
            inputs.append((f"--resume: {role}", out / name))
    modified = refuse_modified(inputs, allow_modified)
    fingerprint = DataFingerprint.of_shards(shards) if shards else DataFingerprint.of(found, config.train.seed)
    changes = _data_changes(out, fingerprint, allow_data_change) if continuing else None
    return Plan(
        config,
        out,
        found,
        images,
        decoding,
        stats,
        measure_view,
        monitor,
        strategy,
        freezes_batch_norm_statistics(config.transfer, strategy.name),
        continuing,
        fingerprint,
        preview,
        found_modalities,
        changes or None,
        shards,
        modified,
    )
