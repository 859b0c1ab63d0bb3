"""`hpt eval`: evaluate a model (run folder, checkpoint or hub name) with a protocol, write `eval.json`.

`eval.json` holds one entry per protocol, so evaluating a run with a second protocol keeps the first's. Each
accuracy has its standard error beside it (`name_se`), and each test image's outcome is kept (`outcomes`, packed,
with the sha256 of the test file list), so `hpt report` can compare two models image by image.

The model's own preprocessing is used: the image size, intensity window, bands and mean/std it was pretrained
with (an hpt run or file records them); a model that records none (a base file, a hub name) is normalised with
the training split's statistics at 224 px or `--image-size`, and `notes` says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import FileProvenance
from hpt.checkpoints.sources import load_backbone, modified_warning
from hpt.core.atomic import check_writable_file, folder_lock, make_folder, write_text_atomic
from hpt.data.decode import Decoding
from hpt.data.files import ImageList, find_images
from hpt.data.intensity import Setting, Window
from hpt.data.overlap import shared_content
from hpt.data.screen import TooManyUnusable, listing_beside
from hpt.data.stats import recorded_stats
from hpt.data.window_choice import resolve_window
from hpt.errors import HptError
from hpt.eval.features import eval_device
from hpt.eval.finetune import FinetuneSettings
from hpt.eval.labelled import LabelledImages, read_labelled
from hpt.eval.protocols import EvalTask, check_protocol, knn_notes
from hpt.eval.uncertainty import pack

DEFAULT_IMAGE_SIZE = 224


@dataclass(frozen=True)
class EvalOptions:
    protocol: str = "knn"
    backbone: str | None = None
    """The architecture of a foreign checkpoint file (hpt's own files and hub names carry it)."""
    image_size: int | None = None
    """None: the size the model was pretrained at (from its provenance), else 224."""
    batch_size: int = 256
    num_workers: int | None = None
    stats_sample: int = 5000
    val: str | None = None
    """A labelled validation split for the linear probe's weight decay; without one, `val_fraction` of train."""
    val_fraction: float = 0.2
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    intensity: Setting | None = None
    """How high-bit images map to 0-255 (`data/intensity.py`); None: the window the model was pretrained with
    (from its provenance), else `auto` on the training split."""
    allow_overlap: bool = False
    """Score splits that share files by content (refused otherwise); recorded in eval.json and said."""


def default_output(spec: str) -> Path:
    path = Path(spec)
    if path.is_dir():
        return path / "eval.json"
    if path.is_file():
        return path.with_name(path.name.split(".")[0] + ".eval.json")
    raise HptError(f"model '{spec}' is not a local run or file: say where to write results with --out")


def evaluate(
    spec: str, train: str, test: str, options: EvalOptions = EvalOptions(), out: Path | None = None
) -> dict[str, Any]:
    """`hpt eval`: fit the protocol's classifier on `train`'s features and score it on `test`.

    Args:
        spec: a run folder, a checkpoint file or a hub name (`timm:NAME`, `torchvision:NAME`).
        train, test: labelled images (one sub-folder per class, a labelled list, or a CSV of 0/1 columns).
        options: the protocol (`knn`, `linear`, `finetune`) and its settings; the model's own image size,
            intensity window and bands unless set.
        out: where `eval.json` is written (default: beside the model).

    Returns:
        The entry written to `eval.json` for this protocol: its `metrics` (accuracy, or mean AUROC for
        multi-label data) and the settings, data and model they came from.

    Example::

        from hpt import EvalOptions, evaluate
        result = evaluate("runs/first", "labelled/train", "labelled/test", EvalOptions("linear"))
        print(result["metrics"])
    """
    protocol = check_protocol(options.protocol)
    if not 0 < options.val_fraction < 1:
        raise HptError(f"--val-fraction {options.val_fraction}: expected a number between 0 and 1")
    out = out or default_output(spec)
    _check_output(out)  # the --out that would take the result checked before any work: not after it
    try:
        images = read_labelled(train, {"test": test, "val": options.val}, allow_overlap=options.allow_overlap)
    except TooManyUnusable as refused:
        raise refused.listed_in(listing_beside(out)) from None
    backbone, origin = load_backbone(spec, options.backbone, role="model")

    provenance = origin.provenance
    bands = recorded_bands(provenance)
    images = images.with_channels(backbone.in_chans, bands)
    decoding = model_decoding(options.intensity, provenance, images.train, backbone.in_chans)
    image_size = model_image_size(backbone, provenance, options.image_size)
    recorded = recorded_stats(provenance, backbone.in_chans)
    data = images.in_view(image_size, options.stats_sample, decoding, recorded)
    workers = min(4, os.cpu_count() or 1) if options.num_workers is None else options.num_workers
    task = EvalTask(backbone, data, eval_device(), options.batch_size, workers, options.val_fraction, options.finetune)
    scored = protocol(task)
    metrics, settings, correct = scored.metrics, scored.settings, scored.correct

    source = "recorded by the model" if recorded else "the training split's (the model records none)"
    notes = [
        f"preprocessing: {image_size} px, mean/std {source}, {decoding.window.describe()}",
        *(f"WARNING, allowed by --allow-overlap: {overlap}" for overlap in images.overlaps),
        *knn_notes(settings),
        *([warning] if (warning := modified_warning(origin)) else []),
        *selection_warnings(provenance, images),
        *([skipped] if (skipped := images.skipped_note()) else []),
    ]
    context: dict[str, Any] = {
        "image_size": data.image_size,
        "normalisation": {"mean": data.stats.mean, "std": data.stats.std, "source": source},
        "train": str(train),
        "test": str(test),
        "classes": images.train.classes,
        "multilabel": images.multilabel,
        **decoding.to_dict(),
    }
    if images.overlaps:  # allowed: every score of this entry is on images that also fitted or picked
        context["overlaps"] = list(images.overlaps)
    if images.skipped():  # screened out before evaluation (`data/screen.py`); named so the figures can be trusted
        context["skipped_files"] = images.skipped()
    result = {
        "protocol": options.protocol,
        "metrics": metrics,
        "settings": {**settings, **context},
        "model": {"spec": spec, "backbone": backbone.name, "path": origin.path, "sha256": origin.sha256},
        "notes": notes,
    }
    if correct:
        result["outcomes"] = packed_outcomes(images.splits["test"].items(), correct)
    _merge_into(out, options.protocol, result)
    return result


def packed_outcomes(test: list[tuple[Path, int | None]], correct: dict[str, Any]) -> dict[str, Any]:
    """Each test image's outcome per score, packed, with which test images they are (in order)."""
    return {
        "test_files_sha256": files_digest(test),
        "images": len(test),
        **{name: pack(outcomes) for name, outcomes in correct.items()},
    }


def files_digest(items: list[tuple[Path, int | None]]) -> str:
    """Which test images (file, and frame of a multi-frame file), in which order: two results compare image by
    image only when this is equal."""
    named = (str(Path(path).resolve()) + ("" if frame is None else f"#frame={frame}") for path, frame in items)
    return hashlib.sha256("\n".join(named).encode()).hexdigest()


def recorded_image_size(provenance: FileProvenance | None) -> int | None:
    """The image size the model was pretrained at, if it records one."""
    return provenance.image_size if provenance else None


def selection_warnings(provenance: FileProvenance | None, images: LabelledImages) -> list[str]:
    """A warning when the images scored here picked the run's exported step, compared by content (a copy of the
    folder or a list of the same files is the same images): that score is biased upwards."""
    selected = provenance.selected if provenance else None
    if provenance is None or not provenance.config_value("monitor.train") or not (selected and selected.picked):
        return []
    if "_val_" in selected.by:  # 0.7 on: picked on monitor.val, or on a held-out part of monitor.train
        picked_on = provenance.config_value("monitor.val") or provenance.config_value("monitor.train")
    else:  # before 0.7 the pick was made on monitor.test itself
        picked_on = provenance.config_value("monitor.test")
    if not picked_on:
        return []
    scored: dict[str, ImageList] = {role: images.splits[role] for role in ("test", "val") if role in images.splits}
    same = [images.specs[role] for role in scored if _same_place(images.specs[role], picked_on)]
    if not same and Path(picked_on).exists():
        try:
            picked = find_images(picked_on, "the run's validation images")
        except HptError as unreadable:  # changed since the run: said, as nothing could be compared
            return [f"note: the images this run picked on were not compared with these by content ({unreadable})"]
        # each scored split against the picking one alone: test and val were compared with each other already
        same = [images.specs[role] for role, split in scored.items() if shared_content({role: split, "p": picked})]
    if not same:
        return []
    return [
        f"warning: '{same[0]}' holds the images this run's exported step was picked on (by {selected.by}): a score on "
        "them is biased upwards; report it on images that picked nothing"
    ]


def _same_place(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def model_image_size(backbone: Backbone, provenance: FileProvenance | None, asked: int | None) -> int:
    """The size asked for, else the one the model was pretrained at, else its only one, else 224."""
    size = asked or recorded_image_size(provenance) or backbone.fixed_input_size or DEFAULT_IMAGE_SIZE
    backbone.check_image_size(size, "--image-size")
    return int(size)


def recorded_bands(provenance: FileProvenance | None) -> tuple[int, ...] | None:
    """The bands of each file the model was pretrained on (`data.bands`), if it records a choice."""
    bands = provenance.data.bands if provenance else None
    return tuple(bands) if bands else None


def model_decoding(
    setting: Setting | None, provenance: FileProvenance | None, train: ImageList, channels: int
) -> Decoding:
    """The model's own decoding: its recorded window unless another is asked for, and its bands."""
    bands = recorded_bands(provenance)
    return Decoding(model_window(setting, provenance, train, bands), channels, bands)


def model_window(
    setting: Setting | None, provenance: FileProvenance | None, train: ImageList, bands: Sequence[int] | None = None
) -> Window:
    """The model's own window when it records one and none is asked for: the pixels it learnt on."""
    recorded = provenance.data.intensity if provenance else None
    if setting is None and recorded:
        return Window.from_dict(recorded)
    return resolve_window(train, setting or "auto", bands=bands)


def _entries(out: Path) -> dict[str, Any]:
    """What `out` holds: a JSON object of entries by protocol, or nothing yet; else one line saying why it is not
    a file to add an entry to."""
    if out.is_dir():
        raise HptError(f"--out '{out}' is a folder; name the JSON file to write (e.g. {out / 'eval.json'})")
    if not out.is_file():
        return {}
    try:
        existing = json.loads(out.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HptError(f"--out '{out}' exists but is not JSON; refusing to overwrite it") from None
    if not isinstance(existing, dict):
        raise HptError(
            f"--out '{out}' holds JSON that is not an object of evaluations (a {type(existing).__name__}); "
            "refusing to overwrite it"
        )
    return existing


def _check_output(out: Path) -> None:
    """Before any work: `out` takes an entry (`_entries`), its folder exists, takes a file and can be locked."""
    _entries(out)
    make_folder(out.parent)
    check_writable_file(out)
    with folder_lock(out.parent):
        pass


def _merge_into(out: Path, protocol: str, result: dict[str, Any]) -> None:
    """Add `result` to `out` under `protocol`, read and written under a lock of its folder: evaluations of one
    model run at once (other protocols, other processes) each keep their entry."""
    with folder_lock(out.parent):
        existing = _entries(out)
        existing[protocol] = result
        write_text_atomic(out, json.dumps(existing, indent=2) + "\n")
