"""`hpt select`: rank candidate starting points (bases, source-stage outputs) on the user's target data.

As HPT chose source models by their target linear accuracy (Reed et al., WACV 2022, Sec. 5.2), each candidate
is scored by a linear probe on its frozen features of the labelled target images: a held-out share of each
class chooses the weight decay and gives the score; kNN (k=20) on the same split is reported beside it. One
forward pass per image per candidate, no training of the backbone: the budget is printed with the ranking.
"""

from __future__ import annotations

import time
from typing import Any

from hpt.checkpoints.sources import load_one_of_several, modified_warning
from hpt.data.bands import dataset_channels
from hpt.data.decode import Decoding
from hpt.data.window_choice import resolve_window
from hpt.errors import HptError
from hpt.eval.features import eval_device, extract_features
from hpt.eval.labelled import groups_of, read_labelled, targets_of
from hpt.eval.protocols import Split, knn_scores, linear_scores, split_validation
from hpt.eval.runner import recorded_stats
from hpt.eval.uncertainty import binomial_standard_error, wilson_interval


def rank_candidates(
    candidates: list[str],
    data: str,
    backbone_name: str | None = None,
    image_size: int = 224,
    val_fraction: float = 0.3,
    batch_size: int = 256,
    num_workers: int = 0,
) -> dict[str, Any]:
    labelled = read_labelled(data, {}, {"train": "data"})
    if labelled.multilabel:
        raise HptError(f"data '{data}': select needs one label per image (one sub-folder per class)")
    channels, _ = dataset_channels(labelled.train.paths, "auto", f"data '{data}'")
    labelled = labelled.with_channels(channels)
    images = labelled.train
    # one decoding for every candidate: they are compared on the same pixels
    decoding = Decoding(resolve_window(images, "auto"), channels)
    shared = labelled.in_view(image_size, decoding=decoding)  # the data's statistics, for models that record none
    device = eval_device()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for spec in candidates:
        began = time.perf_counter()
        backbone, origin = load_one_of_several(spec, backbone_name, "candidate", channels)
        recorded = recorded_stats(origin.provenance, channels)  # a run's own mean/std, as hpt eval uses
        view = labelled.in_view(image_size, decoding=decoding, stats=recorded) if recorded else shared
        features, _ = extract_features(backbone, view.dataset("train"), batch_size, num_workers, device)
        train, val = split_validation(Split(features, targets_of(images), groups_of(images)), val_fraction)
        rows.append(
            {
                "candidate": spec,
                "backbone": backbone.name,
                "normalisation": "recorded by the model" if recorded else "the data's",
                "linear_val_top1": linear_scores(train, val, val)[0]["linear_val_top1"],
                "knn_val_top1_k20": knn_scores(train, val)[0]["knn_top1_k20"],
                "val_images": len(val.targets),
                "seconds": round(time.perf_counter() - began, 2),
                **({"warning": warning} if (warning := modified_warning(origin)) else {}),
            }
        )
    rows.sort(key=lambda row: row["linear_val_top1"], reverse=True)
    budget = {
        "candidates": len(candidates),
        "images": len(images),
        "forward_passes": len(images) * len(candidates),
        "image_size": image_size,
        "val_fraction": val_fraction,
        **decoding.to_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    skipped = {"skipped_files": labelled.skipped(), "skipped": note} if (note := labelled.skipped_note()) else {}
    return {"ranking": rows, "budget": budget, **skipped}


def describe(result: dict[str, Any]) -> str:
    lines = ["rank  linear(val)  95% interval  kNN(val)  seconds  candidate"]
    for rank, row in enumerate(result["ranking"], start=1):
        p, n = row["linear_val_top1"], row["val_images"]
        error, (low, high) = 100 * binomial_standard_error(p, n), wilson_interval(round(p * n), n)
        recorded = ", its recorded mean/std" if row["normalisation"].startswith("recorded") else ""
        lines.append(
            f"{rank:>4}  {p:>6.1%} ± {error:>3.1f}  {100 * low:>5.1f}-{100 * high:<5.1f}  "
            f"{row['knn_val_top1_k20']:>8.1%}  {row['seconds']:>7.1f}  {row['candidate']} ({row['backbone']}{recorded})"
        )
    b = result["budget"]
    lines.append(
        f"budget: {b['candidates']} candidates x {b['images']} labelled images = {b['forward_passes']} "
        f"forward passes at {b['image_size']} px, {b['seconds']:.1f}s; {b['val_fraction']:.0%} of each class "
        "held out to score (± one standard error, and Wilson's 95% interval: a gap smaller than about twice the "
        "standard error is no ranking)"
    )
    if result.get("skipped"):
        lines.append(f"{result['skipped']} (listed in the ranking's JSON, --out)")
    return "\n".join(lines)
