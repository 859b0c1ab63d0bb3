"""Finding the images of a dataset: a folder (searched recursively) or a text file list.

Labels come from the first-level sub-folder names when every image sits in one (the ImageFolder
convention); a file list gives them as an optional second column. Every file's header is checked up front,
so an unreadable file is reported by name before any work starts.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from hpt.errors import HptError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_SUFFIXES = (".txt", ".lst")
TABLE_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class ImageList:
    paths: list[Path]
    labels: list[int] | None
    classes: list[str] | None
    multilabel: list[list[int]] | None = None
    """Multi-hot targets (N x len(classes)) from a CSV of 0/1 columns; then `labels` is None."""

    def __len__(self) -> int:
        return len(self.paths)


def find_images(spec: str | Path, what: str = "data") -> ImageList:
    path = Path(spec).expanduser()
    if path.is_dir():
        images = _from_folder(path, what)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        images = _from_list(path, what)
    elif path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        images = _from_table(path, what)
    elif path.exists():
        raise HptError(f"{what} '{spec}': expected a folder of images or a {'/'.join(LIST_SUFFIXES)} file list")
    else:
        raise HptError(f"{what} '{spec}' does not exist")
    for image_path in images.paths:
        check_image(image_path, what)
    return images


def _from_folder(root: Path, what: str) -> ImageList:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise HptError(f"{what} '{root}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    parts = [p.relative_to(root).parts for p in paths]
    if any(len(rel) < 2 for rel in parts):
        return ImageList(paths, None, None)
    classes = sorted({rel[0] for rel in parts})
    index = {name: i for i, name in enumerate(classes)}
    return ImageList(paths, [index[rel[0]] for rel in parts], classes)


def _from_list(list_file: Path, what: str) -> ImageList:
    paths: list[Path] = []
    names: list[str] = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) > 2:
            raise HptError(f"{what} '{list_file}' line {number}: expected 'PATH [LABEL]', got {len(fields)} fields")
        path = Path(fields[0]).expanduser()
        paths.append(path if path.is_absolute() else list_file.parent / path)
        names.append(fields[1] if len(fields) == 2 else "")
    if not paths:
        raise HptError(f"{what} '{list_file}' lists no images")
    if not all(names):
        if any(names):
            raise HptError(f"{what} '{list_file}': give a label on every line or on none")
        return ImageList(paths, None, None)
    classes = sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return ImageList(paths, [index[n] for n in names], classes)


def _from_table(table: Path, what: str) -> ImageList:
    """A multi-label CSV (CheXpert-style): a header `path,NAME,NAME,...`, then one image and 0/1 per name."""
    with open(table, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise HptError(f"{what} '{table}': expected a header 'path,LABEL,...' and one row per image")
    classes = [name.strip() for name in rows[0][1:]]
    paths, targets = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(rows[0]) or any(v.strip() not in ("0", "1") for v in row[1:]):
            raise HptError(f"{what} '{table}' line {number}: expected a path and {len(classes)} values of 0 or 1")
        path = Path(row[0].strip()).expanduser()
        paths.append(path if path.is_absolute() else table.parent / path)
        targets.append([int(v) for v in row[1:]])
    return ImageList(paths, None, classes, targets)


def check_image(path: Path, what: str = "data") -> None:
    """Read the header only (cheap); a file PIL cannot identify is the user's error, named."""
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - forces the header parse
    except FileNotFoundError:
        raise HptError(f"{what}: image '{path}' does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise HptError(f"{what}: '{path}' is not a readable image ({type(exc).__name__})") from None
