"""Labelled images for an evaluation: the splits read and checked, their classes in the training split's
indices, and the evaluation view normalised with the model's recorded statistics (the training split's own for
a model that records none).

One helper for `hpt eval`, the run's monitor and `hpt select`, so the three see the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from hpt.data.bands import dataset_channels
from hpt.data.dataset import ImageDataset
from hpt.data.decode import RGB, Decoding
from hpt.data.files import ImageList, find_images
from hpt.data.overlap import refuse_overlap, shared_content
from hpt.data.screen import reasons_by_count
from hpt.data.stats import PixelStats, pixel_stats
from hpt.data.views import eval_view
from hpt.errors import HptError

TRAIN = "train"


@dataclass(frozen=True)
class LabelledImages:
    splits: dict[str, ImageList]
    """'train' and the others ('test', 'val'), each other's labels in the training split's class indices."""
    specs: dict[str, str]
    """Where each split came from, as the user named it."""
    overlaps: tuple[str, ...] = ()
    """Splits that share files by content, allowed by the user (`data/overlap.py`), in words; empty: disjoint."""

    @property
    def train(self) -> ImageList:
        return self.splits[TRAIN]

    @property
    def multilabel(self) -> bool:
        return self.train.multilabel is not None

    def skipped(self) -> dict[str, dict[str, str]]:
        """Files screened out of each split (`data/screen.py`), by split: named so the figures can be trusted."""
        return {
            role: {str(path): reason for path, reason in images.skipped.items()}
            for role, images in self.splits.items()
            if images.skipped
        }

    def skipped_note(self) -> str | None:
        """One line on the files screened out of the splits, by split and by reason; None when there are none."""
        found = {role: images.skipped for role, images in self.splits.items() if images.skipped}
        if not found:
            return None
        every = {path: reason for skipped in found.values() for path, reason in skipped.items()}
        where = ", ".join(f"{len(skipped)} of {role}" for role, skipped in found.items())
        return f"skipped {len(every)} unusable files ({where}): {reasons_by_count(every)}"

    def with_channels(self, channels: int, bands: Sequence[int] | None = None) -> LabelledImages:
        """Each split without the files whose band count is not `channels`, or that lack one of `bands` (the
        model's `data.bands`), named in its skipped files."""
        splits = {}
        for role, images in self.splits.items():
            _, other = dataset_channels(images.paths, channels, f"{role} '{self.specs[role]}'", bands)
            splits[role] = images.without(other) if other else images
        return LabelledImages(splits, self.specs, self.overlaps)

    def in_view(
        self, image_size: int, stats_sample: int = 5000, decoding: Decoding = RGB, stats: PixelStats | None = None
    ) -> LabelledViews:
        """Every split in the evaluation view, normalised with `stats` (the model's own, recorded when it was
        pretrained), else with the training split's (a model that records none: a base file, a hub name)."""
        if stats is None:
            stats = pixel_stats(self.train, image_size, stats_sample, decoding=decoding)
        return LabelledViews(self, image_size, decoding, stats, eval_view(image_size, stats.mean, stats.std))


@dataclass(frozen=True)
class LabelledViews:
    images: LabelledImages
    image_size: int
    decoding: Decoding
    """How every split's files become pixels (`data/decode.py`): the model's window and bands."""
    stats: PixelStats
    """Every split is normalised with them: the model's recorded ones, else the training split's."""
    view: Callable[[Any], torch.Tensor]

    def dataset(self, role: str) -> ImageDataset:
        return ImageDataset(self.images.splits[role], self.view, self.decoding)


def read_labelled(
    train: str,
    others: dict[str, str | None],
    names: dict[str, str] | None = None,
    allow_overlap: bool = False,
    how_to_allow: str = "--allow-overlap",
) -> LabelledImages:
    """The training split and the `others` given (role -> folder or list; None: not given), refused when two of
    them share a file by content unless `allow_overlap` (then the overlaps are kept in words). `names`: what each
    role is called in messages where that is not the role itself (e.g. 'monitor.train')."""
    names = names or {}
    name = names.get(TRAIN, TRAIN)
    first = two_classes(labelled(find_images(train, name), name, train), name, train)
    splits, specs = {TRAIN: first}, {TRAIN: train}
    for role, spec in others.items():
        if spec is not None:
            name = names.get(role, role)
            splits[role] = align_classes(labelled(find_images(spec, name), name, spec), first, spec)
            specs[role] = spec
    overlaps = shared_content({names.get(role, role): images for role, images in splits.items()})
    if not allow_overlap:
        refuse_overlap(overlaps, how_to_allow)
    return LabelledImages(splits, specs, tuple(overlap.describe() for overlap in overlaps))


def labelled(images: ImageList, role: str, spec: str) -> ImageList:
    if images.labels is None and images.multilabel is None:
        raise HptError(
            f"{role} '{spec}': evaluation needs labels (one sub-folder per class, a labelled file "
            "list, or a CSV of 0/1 columns)"
        )
    return images


def two_classes(images: ImageList, role: str, spec: str) -> ImageList:
    """A training split of one class makes every classifier answer that class: refused, not scored."""
    if images.labels is not None and len(set(images.labels)) < 2:
        only = images.classes[images.labels[0]] if images.classes and images.labels else "?"
        raise HptError(
            f"{role} '{spec}': every image is of one class ('{only}'); a classifier fitted on it answers that "
            "class whatever the model: give images of at least two classes"
        )
    return images


def align_classes(other: ImageList, train: ImageList, spec: str) -> ImageList:
    """Express `other`'s labels in the training split's class indices."""
    if (other.multilabel is None) != (train.multilabel is None):
        raise HptError(f"'{spec}': single- and multi-label splits cannot be mixed")
    if other.multilabel is not None or other.labels is None or other.classes is None or train.classes is None:
        if other.classes != train.classes:
            raise HptError(f"'{spec}': its label columns differ from the training split's")
        return other
    index = {name: i for i, name in enumerate(train.classes)}
    unknown = sorted(set(other.classes) - set(index))
    if unknown:
        raise HptError(f"'{spec}': classes {', '.join(unknown[:5])} do not occur in the training split")
    return replace(other, labels=[index[other.classes[label]] for label in other.labels], classes=train.classes)


def groups_of(images: ImageList) -> torch.Tensor | None:
    """Each image's file (`ImageList.groups`) where some are frames of one file; None where each is a file."""
    return None if images.frames is None else torch.tensor(images.groups(), dtype=torch.long)


def targets_of(images: ImageList) -> torch.Tensor:
    if images.multilabel is not None:
        return torch.tensor(images.multilabel, dtype=torch.long)
    return torch.tensor(images.labels, dtype=torch.long)
