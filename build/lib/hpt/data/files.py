"""Finding the images of a dataset: a folder (searched recursively) or a text file list.

Labels come from the first-level sub-folder names when every image sits in one (the ImageFolder
convention); a file list gives them as an optional second column. Every file is screened up front
(`screen.py`): unusable ones are left out and listed in `ImageList.skipped`, before any work starts. A
multi-frame DICOM file is one image per frame (`ImageList.frames`), each with the file's label; its frames stay
together wherever images are split (`ImageList.groups`).
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hpt.data.locations import ARCHIVE_REASON, ARCHIVE_SUFFIXES, is_archive, is_url, refuse_archive, refuse_url
from hpt.data.paths import PathList
from hpt.data.screen import ScreenPolicy, TooManyUnusable, dicom_headers, screen
from hpt.data.walk import stat_all, walk
from hpt.errors import HptError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".dcm", ".npy")
"""What is read as an image (a GIF as its first frame); anything else in a folder is not an image."""
LIST_SUFFIXES = (".txt", ".lst")
TABLE_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class ImageList:
    paths: PathList
    """The images' files, compactly (`paths.py`); a list given is made one."""
    labels: list[int] | None
    classes: list[str] | None
    multilabel: list[list[int]] | None = None
    """Multi-hot targets (N x len(classes)) from a CSV of 0/1 columns; then `labels` is None."""
    skipped: dict[Path, str] = field(default_factory=dict)
    """Files that were found but cannot be used, with the reason; they are not in `paths`."""
    frames: list[int] | None = None
    """Each image's frame (0-based) of its file, beside `paths`, which then repeats a multi-frame file once a
    frame; None: every image is a whole file."""
    stats: np.ndarray | None = field(default=None, compare=False)
    """Each file's size, time, mode and identity as it was listed (`walk.FIELDS`), so that screening and the data
    fingerprint stat no file again; None: not known."""
    in_order: bool = field(default=False, compare=False)
    """The images are in sorted (path, frame) order already (a folder's listing), so a sample needs no sort."""

    def __post_init__(self) -> None:
        if not isinstance(self.paths, PathList):
            object.__setattr__(self, "paths", PathList.of(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def files(self) -> int:
        """Files the images come from (fewer than the images where some are frames of one file)."""
        return len(self) if self.frames is None else len(set(self.paths.names()))

    def item(self, index: int) -> tuple[Path, int | None]:
        """(file, frame) of image `index`: what `Decoding` decodes."""
        return self.paths[index], self.frames[index] if self.frames is not None else None

    def items(self) -> list[tuple[Path, int | None]]:
        return [self.item(i) for i in range(len(self))]

    def sample(self, count: int, seed: int) -> list[tuple[Path, int | None]]:
        """A fixed random sample of `count` of the images (all, when fewer), as (file, frame), in sorted order:
        what a dataset's statistics and window are measured on. The sample is the positions `random.sample`
        draws in the sorted order, so it does not depend on how the images were listed."""
        order: Sequence[int] = range(len(self)) if self.in_order else self._sorted()
        if len(self) > count:
            order = [order[p] for p in sorted(random.Random(seed).sample(range(len(self)), count))]
        return [self.item(i) for i in order]

    def _sorted(self) -> list[int]:
        """The images' indices in sorted (path, frame) order: paths compared part by part, as `Path`s are."""
        keys = [name.replace(os.sep, "\0") for name in self.paths.names()]  # a part's end sorts first
        frames = self.frames or [0] * len(self)
        return sorted(range(len(self)), key=lambda i: (keys[i], frames[i]))

    def groups(self) -> list[int]:
        """For each image, the index of its file among the files: the frames of one file share it, and whatever
        splits images (validation, held-out samples) keeps a group on one side."""
        index: dict[str, int] = {}
        return [index.setdefault(name, len(index)) for name in self.paths.names()]

    def subset(self, keep: list[int] | range) -> ImageList:
        increasing = all(a < b for a, b in zip(keep, keep[1:])) if self.in_order else False
        return ImageList(
            self.paths.take(keep),
            [self.labels[i] for i in keep] if self.labels is not None else None,
            self.classes,
            [self.multilabel[i] for i in keep] if self.multilabel is not None else None,
            self.skipped,
            [self.frames[i] for i in keep] if self.frames is not None else None,
            self.stats[np.asarray(keep, dtype=np.int64)] if self.stats is not None else None,
            increasing,
        )

    def without(self, bad: dict[Path, str]) -> ImageList:
        names = {os.fsdecode(path) for path in bad}
        kept = self.subset([i for i, name in enumerate(self.paths.names()) if name not in names])
        return replace(kept, skipped={**self.skipped, **bad})

    def with_frames(self, counts: dict[Path, int]) -> ImageList:
        """Each file of `counts` (its frames, more than one) as that many images, one a frame, in its place."""
        several = {os.fsdecode(path): count for path, count in counts.items() if count > 1}
        if not several:
            return self
        keep, frames = [], []
        for i, name in enumerate(self.paths.names()):
            for frame in range(several.get(name, 1)):
                keep.append(i)
                frames.append(frame)
        return replace(self.subset(keep), frames=frames)


def describe_item(path: Path, frame: int | None) -> str:
    """An image as one line of text: its file, and `#frame=N` for a frame of a multi-frame file."""
    return f"{path}" if frame is None else f"{path}#frame={frame}"


def frames_of(items: list[tuple[Path, int | None]]) -> list[str]:
    """The frames of a sample, for a cache key over it: none when every image is a whole file."""
    return [f"frame {frame}" for _, frame in items if frame is not None]


def find_images(spec: str | Path, what: str = "data", policy: ScreenPolicy | None = None) -> ImageList:
    if is_url(str(spec)):
        raise refuse_url(str(spec), what)
    path = Path(str(spec).removeprefix("file://")).expanduser()
    if path.is_dir():
        images = _from_folder(path, what)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        images = _from_list(path, what)
    elif path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        images = _from_table(path, what)
    elif path.is_file() and is_archive(path.name):
        raise refuse_archive(str(spec), what)
    elif path.exists():
        raise HptError(
            f"{what} '{spec}': expected a folder of images, a {'/'.join(LIST_SUFFIXES)} file list or a "
            f"{'/'.join(TABLE_SUFFIXES)} table"
        )
    else:
        raise HptError(f"{what} '{spec}' does not exist")
    if images.stats is None:  # a list's or a table's files: stat-ed here, once, in threads
        images = replace(images, stats=stat_all(list(images.paths.names())))
    policy = policy or ScreenPolicy()
    archives = {Path(name): ARCHIVE_REASON for name in images.paths.names() if is_archive(name)}
    images = images.without(archives) if archives else images  # listed, never passed over in silence
    total = len(images) + len(archives)
    try:
        bad = archives | screen(images.paths, f"{what} '{spec}'", policy, images.stats)
    except TooManyUnusable as refused:
        bad = archives | refused.bad
    if bad and (len(bad) > policy.max_bad_fraction * total or len(bad) == total):
        raise TooManyUnusable(f"{what} '{spec}'", bad, total, policy.max_bad_fraction)
    images = images.without(bad) if bad else images
    frames = {path: header.frames for path, header in dicom_headers(images.paths, images.stats).items()}
    return images.with_frames(frames)


def _from_folder(root: Path, what: str) -> ImageList:
    """Every image under `root` (`walk.py`: listed and stat-ed once, in sorted order); labels from the first-level
    folders when every image sits in one."""
    listing = walk(root, IMAGE_SUFFIXES + ARCHIVE_SUFFIXES)
    if not len(listing.paths):
        raise HptError(f"{what} '{root}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if all(is_archive(name) for name in listing.paths.names()):
        raise HptError(
            f"{what} '{root}' holds no images, only {len(listing.paths)} archives (e.g. '{listing.paths.name(0)}'): "
            "a folder of nothing but .tar shards streams; others are not read: extract them into the folder"
        )
    if (listing.tops < 0).any():
        return ImageList(listing.paths, None, None, stats=listing.stats, in_order=True)
    shared = list(range(len(listing.folders)))  # one int object a class, not one a file
    labels = [shared[top] for top in listing.tops.tolist()]
    return ImageList(listing.paths, labels, listing.folders, stats=listing.stats, in_order=True)


def _from_list(list_file: Path, what: str) -> ImageList:
    paths: list[Path] = []
    names: list[str] = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) > 2:
            raise HptError(f"{what} '{list_file}' line {number}: expected 'PATH [LABEL]', got {len(fields)} fields")
        paths.append(_relative_to(list_file, fields[0]))
        names.append(fields[1] if len(fields) == 2 else "")
    if not paths:
        raise HptError(f"{what} '{list_file}' lists no images")
    if not all(names):
        if any(names):
            raise HptError(f"{what} '{list_file}': give a label on every line or on none")
        return ImageList(PathList.of(paths), None, None)
    classes = sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return ImageList(PathList.of(paths), [index[n] for n in names], classes)


def _from_table(table: Path, what: str) -> ImageList:
    """A CSV with a header. `path` or `path,label`: one image per row, with its class name in the `label`
    column (a plain list, as the `.txt` list). `path,NAME,NAME,...` with other names: multi-label
    (CheXpert-style), one 0/1 value per name. Paths are relative to the CSV's folder unless absolute."""
    with open(table, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    header = [name.strip() for name in rows[0]] if rows else []
    if len(rows) < 2 or not header or header[0].lower() != "path":
        raise HptError(
            f"{what} '{table}': expected a header 'path', 'path,label' or 'path,NAME,...' (0/1 columns) and "
            "one row per image"
        )
    if [name.lower() for name in header] in (["path"], ["path", "label"]):
        return _plain_table(table, what, rows)
    classes = header[1:]
    paths, targets = [], []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header) or any(v.strip() not in ("0", "1") for v in row[1:]):
            raise HptError(f"{what} '{table}' line {number}: expected a path and {len(classes)} values of 0 or 1")
        paths.append(_relative_to(table, row[0]))
        targets.append([int(v) for v in row[1:]])
    return ImageList(PathList.of(paths), None, classes, targets)


def _plain_table(table: Path, what: str, rows: list[list[str]]) -> ImageList:
    width = len(rows[0])
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width or not row[0].strip() or (width == 2 and not row[1].strip()):
            expected = "a path and a label" if width == 2 else "a path"
            raise HptError(f"{what} '{table}' line {number}: expected {expected}")
    paths = [_relative_to(table, row[0]) for row in rows[1:]]
    if width == 1:
        return ImageList(PathList.of(paths), None, None)
    names = [row[1].strip() for row in rows[1:]]
    classes = sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return ImageList(PathList.of(paths), [index[n] for n in names], classes)


def _relative_to(list_file: Path, entry: str) -> Path:
    if is_url(entry.strip()):
        raise refuse_url(entry.strip(), f"'{list_file}' lists")
    path = Path(entry.strip()).expanduser()
    return path if path.is_absolute() else list_file.parent / path
