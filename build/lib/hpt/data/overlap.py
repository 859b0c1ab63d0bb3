"""Labelled splits that share no image, checked by content.

A score on images that also fitted the classifier, or picked the step or the weight decay, is biased upwards:
`hpt eval --train X --test X` scores a kNN 100%. Comparing the splits' paths misses a copied folder, a second
list of the same files, a link or a file saved twice; comparing their bytes does not. Each split's files are
compared by size first (from the listing's stat, no read), and only files whose size occurs in another split are
read and hashed (sha256, as the data fingerprint hashes): splits of compressed images of different sizes cost a
stat each, splits of fixed-size files (raw .npy, uncompressed DICOM) a read each. A multi-frame file is one file:
its frames in two splits are an overlap.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from hpt.data.files import ImageList
from hpt.data.walk import FIELDS, THREADS, stat_all
from hpt.errors import HptError

CHUNK = 1 << 20
"""Bytes read at a time while hashing."""


@dataclass(frozen=True)
class Overlap:
    """Files of two splits with the same content."""

    first: str
    second: str
    files: int
    example: tuple[str, str]
    """A file of `first` and the file of `second` with its content (the same path where the splits share one)."""

    def describe(self) -> str:
        a, b = self.example
        same = f"'{a}'" if a == b else f"'{a}' is '{b}'"
        plural = "file" if self.files == 1 else "files"
        return f"{self.first} and {self.second} share {self.files} {plural} by content (e.g. {same})"


def shared_content(splits: dict[str, ImageList]) -> list[Overlap]:
    """Each pair of `splits` (role -> images) whose files share content, in the order the roles are given."""
    files = {role: _files(images) for role, images in splits.items()}
    counts: dict[int, int] = {}
    for sizes in files.values():
        for size in set(sizes.values()):
            counts[size] = counts.get(size, 0) + 1
    to_hash = sorted({name for sizes in files.values() for name, size in sizes.items() if counts[size] > 1})
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        digests = dict(zip(to_hash, pool.map(_sha256, to_hash)))
    keys = {
        role: {(size, digests[name]): name for name, size in sizes.items() if name in digests}
        for role, sizes in files.items()
    }
    overlaps = []
    for first, second in combinations(splits, 2):
        common = sorted(set(keys[first]) & set(keys[second]), key=lambda key: keys[first][key])
        if common:
            example = (keys[first][common[0]], keys[second][common[0]])
            overlaps.append(Overlap(first, second, len(common), example))
    return overlaps


def _files(images: ImageList) -> dict[str, int]:
    """Each distinct file of `images` with its size (from the listing's stat where it has one)."""
    names = list(images.paths.names())
    stats = images.stats if images.stats is not None else stat_all(names)
    sizes = np.asarray(stats)[:, FIELDS.index("size")]
    return {name: int(size) for name, size in zip(names, sizes)}


def _sha256(name: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(name, "rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
    except OSError:  # gone since it was screened: no content to share (reading it later says so)
        return f"unreadable:{os.fsdecode(name)}"
    return digest.hexdigest()


def refuse_overlap(overlaps: list[Overlap], how_to_allow: str) -> None:
    """One line naming every overlap, unless there is none."""
    if overlaps:
        raise HptError(
            "; ".join(overlap.describe() for overlap in overlaps) + ": a score on images that also fitted the "
            f"classifier or picked a setting is biased upwards; give splits with no image in common, or "
            f"{how_to_allow} to score them anyway (recorded, and said beside every score)"
        )
