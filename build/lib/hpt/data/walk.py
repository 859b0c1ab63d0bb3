"""Listing a folder of a million images: every file found and stat-ed once, in the order of sorted paths.

`pathlib.Path.rglob` makes a `Path` of every entry, and screening and the data fingerprint then stat each file
again (three times a file, with a `resolve()` that stats every folder of its path). Here each folder is read with
`os.scandir`, many folders at once in threads (the calls release the interpreter lock, and a network file system
answers each in milliseconds), each image file is stat-ed once (`os.DirEntry.stat`, which follows symbolic links
as opening the file would), and the names go straight into a `PathList`. Screening keys (`screen.py`) and the
data fingerprint (`fingerprint.py`) read the sizes, times and identities from `Listing.stats`.

The order and the files are `sorted(root.rglob(...))`'s: a folder's entries by name, files and sub-folders alike,
each sub-folder's files where its name falls, so a listing and the `Path` sort agree file for file; symbolic links
to folders are not followed (as `rglob` does not follow them), so no loop can form. Entries that are not folders
are listed even when they are not regular files (a FIFO, a device, a dangling link with an image's name):
screening names them, never opens them.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpt.data.paths import PathList

THREADS = 16
"""Folders read at once: a local disk gains little past a few, a network file system keeps gaining."""
FIELDS = ("size", "mtime_ns", "mode", "dev", "ino")
"""`Listing.stats`' columns; a file that cannot be stat-ed (gone, a dangling link) has -1 in each."""


@dataclass(frozen=True)
class Listing:
    paths: PathList
    stats: np.ndarray
    """N x 5 int64: `FIELDS` of each file (following symbolic links)."""
    tops: np.ndarray
    """N int32: each file's first-level folder, an index into `folders` (-1: a file at the top itself)."""
    folders: list[str]
    """The first-level folders that hold images, sorted."""


@dataclass
class _Folder:
    files: list[str]
    stats: array
    folders: list[str]
    """Sub-folders' names; their own `_Folder`s are scanned separately."""


def walk(root: Path, suffixes: tuple[str, ...]) -> Listing:
    """The files under `root` whose names end in one of `suffixes` (any case), in sorted-path order."""
    scanned: dict[str, _Folder] = {}
    level = [str(root)]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        while level:
            following = []
            for folder, content in zip(level, pool.map(lambda folder: _scan(folder, suffixes), level)):
                scanned[folder] = content
                following += [os.path.join(folder, name) for name in content.folders]
            level = following
    return _in_order(str(root), scanned)


def stat_all(paths: Sequence[str]) -> np.ndarray:
    """`FIELDS` of each of `paths` (a list's or a table's), in threads: N x 5 int64."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        rows = list(pool.map(_stat, paths, chunksize=256))
    return np.array(rows, dtype=np.int64).reshape(len(rows), len(FIELDS))


def _scan(folder: str, suffixes: tuple[str, ...]) -> _Folder:
    content = _Folder([], array("q"), [])
    try:
        entries = list(os.scandir(folder))
    except OSError:  # a folder the job may not read: left out, as rglob leaves it
        return content
    for entry in entries:
        try:
            walked, a_folder = entry.is_dir(follow_symlinks=False), entry.is_dir()
        except OSError:
            walked = a_folder = False
        if walked:
            content.folders.append(entry.name)
        elif not a_folder and entry.name.lower().endswith(suffixes):  # a link to a folder is neither
            content.files.append(entry.name)
            content.stats.extend(_stat(entry))
    return content


def _stat(entry: os.DirEntry | str) -> tuple[int, int, int, int, int]:
    try:
        st = entry.stat() if isinstance(entry, os.DirEntry) else os.stat(entry)
    except OSError:
        return (-1, -1, -1, -1, -1)
    return st.st_size, st.st_mtime_ns, st.st_mode, st.st_dev, st.st_ino


def _in_order(root: str, scanned: dict[str, _Folder]) -> Listing:
    """Every folder's files and sub-folders by name, depth first: the sorted-path order."""
    buffer, ends, stats, tops = bytearray(), array("q"), array("q"), array("i")
    first_level = {name: i for i, name in enumerate(sorted(scanned[root].folders))}

    def visit(folder: str, top: int) -> None:
        content = scanned.pop(folder)  # let go of each folder's names once its files are in the buffer
        files = [(name, i) for i, name in enumerate(content.files)]
        for name, i in sorted(files + [(name, -1) for name in content.folders]):
            path = os.path.join(folder, name)
            if i < 0:
                visit(path, first_level[name] if top < 0 else top)
                continue
            buffer.extend(os.fsencode(path))
            ends.append(len(buffer))
            stats.extend(content.stats[len(FIELDS) * i : len(FIELDS) * (i + 1)])
            tops.append(top)

    visit(root, -1)
    found = np.frombuffer(tops, dtype=np.int32) if len(tops) else np.zeros(0, dtype=np.int32)
    used = sorted(set(found.tolist()) - {-1})
    names = sorted(first_level, key=first_level.__getitem__)
    remap = np.full(len(names) + 1, -1, dtype=np.int32)  # the last entry serves -1
    remap[used] = np.arange(len(used), dtype=np.int32)
    names_buffer = bytes(buffer)
    buffer.clear()  # its copy above is the one kept
    paths = PathList(names_buffer, np.frombuffer(ends, dtype=np.int64) if len(ends) else np.zeros(0, np.int64))
    table = (
        np.frombuffer(stats, dtype=np.int64).reshape(-1, len(FIELDS))
        if len(stats)
        else np.zeros((0, len(FIELDS)), dtype=np.int64)
    )  # fmt: skip  (views of the arrays: no copy)
    return Listing(paths, table, remap[found], [names[i] for i in used])
