"""`hpt eval`: evaluate a model (run folder, checkpoint or hub name) with a protocol, write `eval.json`.

`eval.json` holds one entry per protocol, so evaluating a run with a second protocol keeps the first's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hpt.checkpoints.files import write_text_atomic
from hpt.checkpoints.sources import load_backbone
from hpt.data.dataset import ImageDataset
from hpt.data.files import ImageList, find_images
from hpt.data.stats import pixel_stats
from hpt.data.views import eval_view
from hpt.errors import HptError
from hpt.eval.features import eval_device, extract_features
from hpt.eval.finetune import FinetuneSettings, finetune
from hpt.eval.knn import knn_accuracy
from hpt.eval.linear import linear_probe

DEFAULT_IMAGE_SIZE = 224
KNN_KS = (20, 200)
KNN_TEMPERATURE = 0.07


@dataclass(frozen=True)
class Split:
    features: torch.Tensor
    targets: torch.Tensor
    """N class indices, or N x C multi-hot for multi-label data."""

    @property
    def multilabel(self) -> bool:
        return self.targets.ndim == 2

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.features[index], self.targets[index])


def knn_protocol(train: Split, val: Split | None, test: Split) -> tuple[dict[str, float], dict[str, Any]]:
    if train.multilabel:
        raise HptError("the knn protocol needs one label per image; use --protocol linear for multi-label data")
    metrics = {f"knn_top1_k{k}": knn_accuracy(train.features, train.targets, test.features, test.targets, k,
                                               KNN_TEMPERATURE) for k in KNN_KS}
    return metrics, {"k": list(KNN_KS), "temperature": KNN_TEMPERATURE, "similarity": "cosine"}


def linear_protocol(train: Split, val: Split, test: Split) -> tuple[dict[str, float], dict[str, Any]]:
    result = linear_probe((train.features, train.targets), (val.features, val.targets),
                          (test.features, test.targets), multilabel=train.multilabel)
    return result["metrics"], result["settings"]


@dataclass(frozen=True)
class Protocol:
    run: Callable[[Split, Split | None, Split], tuple[dict[str, float], dict[str, Any]]]
    needs_validation: bool


PROTOCOLS: dict[str, Protocol] = {
    "knn": Protocol(knn_protocol, needs_validation=False),
    "linear": Protocol(linear_protocol, needs_validation=True),
}


def split_validation(train: Split, fraction: float, seed: int = 0) -> tuple[Split, Split]:
    """Hold out `fraction` of each class (at least one image) of `train` for validation, reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    keys = train.targets if not train.multilabel else torch.zeros(len(train.targets), dtype=torch.long)
    held = []
    for label in keys.unique():
        members = torch.nonzero(keys == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        held.append(members[: max(1, round(fraction * len(members)))])
    held_out = torch.zeros(len(keys), dtype=torch.bool)
    held_out[torch.cat(held)] = True
    return train.subset(~held_out), train.subset(held_out)


def default_output(spec: str) -> Path:
    path = Path(spec)
    if path.is_dir():
        return path / "eval.json"
    if path.is_file():
        return path.with_name(path.name.split(".")[0] + ".eval.json")
    raise HptError(f"model '{spec}' is not a local run or file: say where to write results with --out")


def evaluate(spec: str, train_dir: str, test_dir: str, protocol: str = "knn", backbone_name: str | None = None,
             image_size: int | None = None, batch_size: int = 256, out: Path | None = None,
             num_workers: int | None = None, stats_sample: int = 5000, val_dir: str | None = None,
             val_fraction: float = 0.2, finetune_settings: FinetuneSettings | None = None) -> dict[str, Any]:
    if protocol not in [*PROTOCOLS, "finetune"]:
        raise HptError(f"protocol '{protocol}': expected one of {', '.join([*PROTOCOLS, 'finetune'])}")
    if not 0 < val_fraction < 1:
        raise HptError(f"--val-fraction {val_fraction}: expected a number between 0 and 1")
    out = out or default_output(spec)
    train_images = labelled(find_images(train_dir, "train"), "train", train_dir)
    named = [("test", test_dir)] + ([("val", val_dir)] if val_dir else [])
    others = {role: align_classes(labelled(find_images(d, role), role, d), train_images, d) for role, d in named}
    backbone, origin = load_backbone(spec, backbone_name, role="model")

    provenance = origin.get("provenance") or {}
    size = image_size or provenance.get("config", {}).get("data", {}).get("image_size") or DEFAULT_IMAGE_SIZE
    stats = pixel_stats(train_images, size, stats_sample)
    view = eval_view(size, stats.mean, stats.std)
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    device = eval_device()
    context = {"image_size": size, "normalisation": {"mean": stats.mean, "std": stats.std}, "train": str(train_dir),
               "test": str(test_dir), "classes": train_images.classes,
               "multilabel": train_images.multilabel is not None}
    skipped = {role: {str(path): reason for path, reason in images.skipped.items()}
               for role, images in [("train", train_images), *others.items()] if images.skipped}
    if skipped:  # screened out before evaluation (`data/screen.py`); named here so the figures can be trusted
        context["skipped_files"] = skipped
    model = {"spec": spec, "backbone": backbone.name, "path": origin.get("path"), "sha256": origin.get("sha256")}

    if protocol == "finetune":  # trains the backbone itself, so it cannot work on precomputed features
        if train_images.multilabel is not None:
            raise HptError("the finetune protocol needs one label per image")
        metrics, settings = finetune(backbone, train_images, others["test"], size, stats.mean, stats.std,
                                     finetune_settings or FinetuneSettings(), device)
        counts = {"train_images": len(train_images), "test_images": len(others["test"])}
        return _record(out, protocol, metrics, {**settings, **context, **counts}, model)

    def features(images: ImageList) -> Split:
        feats, _ = extract_features(backbone, ImageDataset(images, view), batch_size, workers, device)
        return Split(feats, targets_of(images))

    train, test = features(train_images), features(others["test"])
    val, validation = None, {}
    if PROTOCOLS[protocol].needs_validation and val_dir:
        val, validation = features(others["val"]), {"val": str(val_dir), "val_images": len(others["val"])}
    elif PROTOCOLS[protocol].needs_validation:
        train, val = split_validation(train, val_fraction)
        validation = {"val_fraction": val_fraction, "val_images": len(val.targets)}
    metrics, settings = PROTOCOLS[protocol].run(train, val, test)
    counts = {"train_images": len(train.targets), "test_images": len(test.targets), **validation}
    return _record(out, protocol, metrics, {**settings, **context, **counts}, model)


def _record(out: Path, protocol: str, metrics: dict[str, float], settings: dict[str, Any],
            model: dict[str, Any]) -> dict[str, Any]:
    result = {"protocol": protocol, "metrics": metrics, "settings": settings, "model": model}
    _merge_into(out, protocol, result)
    return result


def labelled(images: ImageList, role: str, spec: str) -> ImageList:
    if images.labels is None and images.multilabel is None:
        raise HptError(f"{role} '{spec}': evaluation needs labels (one sub-folder per class, a labelled file "
                       "list, or a CSV of 0/1 columns)")
    return images


def align_classes(other: ImageList, train: ImageList, spec: str) -> ImageList:
    """Express `other`'s labels in the training split's class indices."""
    if (other.multilabel is None) != (train.multilabel is None):
        raise HptError(f"'{spec}': single- and multi-label splits cannot be mixed")
    if other.multilabel is not None:
        if other.classes != train.classes:
            raise HptError(f"'{spec}': its label columns differ from the training split's")
        return other
    index = {name: i for i, name in enumerate(train.classes)}
    unknown = sorted(set(other.classes) - set(index))
    if unknown:
        raise HptError(f"'{spec}': classes {', '.join(unknown[:5])} do not occur in the training split")
    return ImageList(other.paths, [index[other.classes[label]] for label in other.labels], train.classes)


def targets_of(images: ImageList) -> torch.Tensor:
    if images.multilabel is not None:
        return torch.tensor(images.multilabel, dtype=torch.long)
    return torch.tensor(images.labels, dtype=torch.long)


def _merge_into(out: Path, protocol: str, result: dict[str, Any]) -> None:
    existing: dict[str, Any] = {}
    if out.is_file():
        try:
            existing = json.loads(out.read_text())
        except json.JSONDecodeError:
            raise HptError(f"'{out}' exists but is not JSON; refusing to overwrite it") from None
    existing[protocol] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(existing, indent=2) + "\n")
