"""The evaluation protocols, by name: `knn` and `linear` on frozen features, `finetune` on the backbone itself.

Every protocol takes one `EvalTask` (a model, its labelled splits in the evaluation view, where to run) and
returns its metrics and the settings that produced them, counts included. Features are computed once per
split and task, so the monitor's `both` scores kNN and the linear probe on the same features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset

from hpt.backbones import Backbone
from hpt.errors import HptError
from hpt.eval.features import extract_features
from hpt.eval.finetune import FinetuneSettings, finetune
from hpt.eval.knn import knn_correct
from hpt.eval.labelled import LabelledViews, groups_of, targets_of
from hpt.eval.linear import linear_probe
from hpt.eval.uncertainty import with_errors

KNN_KS = (20, 200)
KNN_TEMPERATURE = 0.07


class Result(NamedTuple):
    metrics: dict[str, float]
    """Each score on the test split, and each accuracy's standard error beside it (`name_se`)."""
    settings: dict[str, Any]
    correct: dict[str, torch.Tensor] = {}
    """Per accuracy, whether each test image was classified right (in the split's order): what a paired
    comparison of two models or two steps on the same images needs (`uncertainty.py`)."""
    picked_on: dict[str, torch.Tensor] = {}
    """Per validation score (`linear_val_top1`), whether each validation image was classified right at the
    setting it chose: what comparing two steps on the images that pick needs."""


@dataclass(frozen=True)
class Split:
    features: torch.Tensor
    targets: torch.Tensor
    """N class indices, or N x C multi-hot for multi-label data."""
    groups: torch.Tensor | None = None
    """N file indices where some images are frames of one file (`ImageList.groups`), which a validation split
    keeps together; None: every image its own file."""

    @property
    def multilabel(self) -> bool:
        return self.targets.ndim == 2

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.features[index], self.targets[index], None if self.groups is None else self.groups[index])


@dataclass
class EvalTask:
    backbone: Backbone
    data: LabelledViews
    device: torch.device | str = "cpu"
    batch_size: int = 256
    num_workers: int = 0
    val_fraction: float = 0.2
    """Share of each training class held out to choose the linear probe's weight decay, without a 'val' split."""
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    """Splits already decoded (the monitor's, kept between evaluations); the others are decoded from `data`."""
    _features: dict[str, Split] = field(default_factory=dict, repr=False)

    def features(self, role: str) -> Split:
        if role not in self._features:
            dataset = self.datasets[role] if role in self.datasets else self.data.dataset(role)
            workers = 0 if role in self.datasets else self.num_workers  # tensors in memory: nothing to decode
            features, _ = extract_features(self.backbone, dataset, self.batch_size, workers, self.device)
            images = self.data.images.splits[role]
            self._features[role] = Split(features, targets_of(images), groups_of(images))
        return self._features[role]

    def fit_and_validation(self) -> tuple[Split, Split, dict[str, Any]]:
        """The training features to fit on and those to choose settings on: the 'val' split when one was
        given, else a held-out share of each training class; with a record of which."""
        if "val" in self.data.images.splits:
            val = self.features("val")
            return self.features("train"), val, {"val": self.data.images.specs["val"], "val_images": len(val.targets)}
        fit, val = split_validation(self.features("train"), self.val_fraction)
        return fit, val, {"val_fraction": self.val_fraction, "val_images": len(val.targets)}


def knn(task: EvalTask) -> Result:
    train, test = task.features("train"), task.features("test")
    metrics, settings, correct, _ = knn_scores(train, test)
    return Result(metrics, {**settings, "train_images": len(train.targets), "test_images": len(test.targets)}, correct)


def linear(task: EvalTask) -> Result:
    fit, val, validation = task.fit_and_validation()
    test = task.features("test")
    metrics, settings, correct, picked_on = linear_scores(fit, val, test)
    counts = {"train_images": len(fit.targets), "test_images": len(test.targets)}
    return Result(metrics, {**settings, **counts, **validation}, correct, picked_on)


def finetune_protocol(task: EvalTask) -> Result:
    """Trains the backbone itself (a copy), so it works on images, not on precomputed features."""
    images = task.data.images
    if images.multilabel:
        raise HptError("the finetune protocol needs one label per image")
    stats = task.data.stats
    metrics, settings, correct = finetune(
        task.backbone,
        images.train,
        images.splits["test"],
        task.data.image_size,
        stats.mean,
        stats.std,
        task.finetune,
        task.device,
        task.data.decoding,
    )
    counts = {"train_images": len(images.train), "test_images": len(images.splits["test"])}
    return Result(with_errors(metrics, correct), {**settings, **counts}, correct)


PROTOCOLS: dict[str, Callable[[EvalTask], Result]] = {"knn": knn, "linear": linear, "finetune": finetune_protocol}


def check_protocol(name: str) -> Callable[[EvalTask], Result]:
    if name not in PROTOCOLS:
        raise HptError(f"protocol '{name}': expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def knn_scores(train: Split, test: Split) -> Result:
    """Weighted kNN (cosine similarity, temperature 0.07) at each of `KNN_KS`."""
    if train.multilabel:
        raise HptError("the knn protocol needs one label per image; use --protocol linear for multi-label data")
    correct = {
        f"knn_top1_k{k}": knn_correct(train.features, train.targets, test.features, test.targets, k, KNN_TEMPERATURE)
        for k in KNN_KS
    }
    metrics = {name: float(outcomes.double().mean()) for name, outcomes in correct.items()}
    settings: dict[str, Any] = {"k": list(KNN_KS), "temperature": KNN_TEMPERATURE, "similarity": "cosine"}
    if clipped := [k for k in KNN_KS if k > len(train.targets)]:  # `knn_predict` takes every image there is
        settings["k_clipped"] = {f"knn_top1_k{k}": len(train.targets) for k in clipped}
    return Result(with_errors(metrics, correct), settings, correct)


def knn_notes(settings: dict[str, Any]) -> list[str]:
    """What a reader of a kNN score must know: a k over the training images votes with all of them."""
    return [
        f"{name}: k is more than the {used} training images, so every one of them votes (k = {used})"
        for name, used in settings.get("k_clipped", {}).items()
    ]


def linear_scores(train: Split, val: Split, test: Split) -> Result:
    result = linear_probe(
        (train.features, train.targets),
        (val.features, val.targets),
        (test.features, test.targets),
        multilabel=train.multilabel,
    )
    correct = result["correct"]
    return Result(with_errors(result["metrics"], correct), result["settings"], correct, result["picked_on"])


def whole_groups(members: torch.Tensor, groups: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Of `members` (image indices, each of the file `groups` says), whole files in a seeded order until at
    least `count` images are taken: their indices."""
    files = groups.unique()
    taken: list[torch.Tensor] = []
    for file in files[torch.randperm(len(files), generator=generator)]:
        taken.append(members[groups == file])
        if sum(len(t) for t in taken) >= count:
            break
    return torch.cat(taken)


def held_out_count(members: int, fraction: float) -> int:
    """How many of a class's `members` validation holds out: `fraction` of them, at least one."""
    return max(1, round(fraction * members))


def split_validation(train: Split, fraction: float, seed: int = 0) -> tuple[Split, Split]:
    """Hold out `fraction` of each class (at least one image) of `train` for validation, reproducibly; the frames
    of one file (`Split.groups`) all on one side, whole files drawn until the class's share is reached."""
    generator = torch.Generator().manual_seed(seed)
    keys = train.targets if not train.multilabel else torch.zeros(len(train.targets), dtype=torch.long)
    held = []
    for label in keys.unique():
        members = torch.nonzero(keys == label).flatten()
        count = held_out_count(len(members), fraction)
        if train.groups is not None:
            held.append(whole_groups(members, train.groups[members], count, generator))
            continue
        members = members[torch.randperm(len(members), generator=generator)]
        held.append(members[:count])
    held_out = torch.zeros(len(keys), dtype=torch.bool)
    held_out[torch.cat(held)] = True
    return train.subset(~held_out), train.subset(held_out)
