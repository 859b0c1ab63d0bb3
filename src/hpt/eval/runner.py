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
from hpt.checkpoints.sources import load_backbone, resolve_path
from hpt.data.dataset import ImageDataset
from hpt.data.files import ImageList, find_images
from hpt.data.stats import pixel_stats
from hpt.data.views import eval_view
from hpt.errors import HptError
from hpt.eval.features import extract_features
from hpt.eval.knn import knn_accuracy

DEFAULT_IMAGE_SIZE = 224
KNN_KS = (20, 200)
KNN_TEMPERATURE = 0.07


@dataclass(frozen=True)
class Split:
    features: torch.Tensor
    labels: torch.Tensor


def knn_protocol(train: Split, test: Split) -> tuple[dict[str, float], dict[str, Any]]:
    metrics = {f"knn_top1_k{k}": knn_accuracy(train.features, train.labels, test.features, test.labels, k,
                                               KNN_TEMPERATURE) for k in KNN_KS}
    return metrics, {"k": list(KNN_KS), "temperature": KNN_TEMPERATURE, "similarity": "cosine"}


PROTOCOLS: dict[str, Callable[[Split, Split], tuple[dict[str, float], dict[str, Any]]]] = {"knn": knn_protocol}


def default_output(spec: str) -> Path:
    path = Path(spec)
    if path.is_dir():
        return path / "eval.json"
    if path.is_file():
        return path.with_name(path.name.split(".")[0] + ".eval.json")
    raise HptError(f"model '{spec}' is not a local run or file: say where to write results with --out")


def evaluate(spec: str, train_dir: str, test_dir: str, protocol: str = "knn", backbone_name: str | None = None,
             image_size: int | None = None, batch_size: int = 256, out: Path | None = None,
             num_workers: int | None = None, stats_sample: int = 5000) -> dict[str, Any]:
    if protocol not in PROTOCOLS:
        raise HptError(f"protocol '{protocol}': expected one of {', '.join(PROTOCOLS)}")
    out = out or default_output(spec)
    train_images = _labelled(find_images(train_dir, "train"), "train", train_dir)
    test_images = _labelled(find_images(test_dir, "test"), "test", test_dir)
    test_images = _align_classes(test_images, train_images.classes, test_dir)
    backbone, origin = load_backbone(spec, backbone_name, role="model")

    provenance = origin.get("provenance") or {}
    size = image_size or provenance.get("config", {}).get("data", {}).get("image_size") or DEFAULT_IMAGE_SIZE
    stats = pixel_stats(train_images, size, stats_sample)
    view = eval_view(size, stats.mean, stats.std)
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    device = "cuda" if torch.cuda.is_available() else "cpu"
    splits = [Split(*extract_features(backbone, ImageDataset(images, view), batch_size, workers, device))
              for images in (train_images, test_images)]
    metrics, settings = PROTOCOLS[protocol](*splits)

    result = {
        "protocol": protocol,
        "metrics": metrics,
        "settings": {**settings, "image_size": size, "normalisation": {"mean": stats.mean, "std": stats.std},
                     "train": str(train_dir), "test": str(test_dir), "train_images": len(train_images),
                     "test_images": len(test_images), "classes": train_images.classes},
        "model": {"spec": spec, "backbone": backbone.name, "path": origin.get("path"),
                  "sha256": origin.get("sha256")},
    }
    _merge_into(out, protocol, result)
    return result


def _labelled(images: ImageList, role: str, spec: str) -> ImageList:
    if images.labels is None:
        raise HptError(f"{role} '{spec}': evaluation needs labels (one sub-folder per class, or a labelled file list)")
    return images


def _align_classes(test: ImageList, classes: list[str], spec: str) -> ImageList:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(test.classes) - set(index))
    if unknown:
        raise HptError(f"test '{spec}': classes {', '.join(unknown[:5])} do not occur in the training split")
    labels = [index[test.classes[label]] for label in test.labels]
    return ImageList(test.paths, labels, classes)


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
