"""A dataset's file names, kept compactly: a million of them in tens of megabytes, not in a list of `Path` objects.

A `pathlib.Path` costs about 500 bytes (its string, its parts, the object), so a list of a million of them holds
half a gigabyte in the main process, and every loader worker that touches them copies the pages they sit on
(their reference counts are written to). `PathList` keeps every name in one bytes buffer with an array of
offsets (about the name's length plus 8 bytes a file), gives a `Path` only when one is asked for, and is pickled
to a worker as two buffers. It reads as a `Sequence[Path]`; what runs over every file (screening's keys, the data
fingerprint, suffix filters) reads its names as strings (`names`), which costs no `Path` at all.

Names are the file system's bytes (`os.fsencode`), so any name a folder can hold round-trips, undecodable
bytes included.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np


class PathList(Sequence[Path]):
    """Paths in one buffer (see the module's docstring); `PathList.of(paths)` makes one of any iterable."""

    __slots__ = ("_buffer", "_ends")

    def __init__(self, buffer: bytes, ends: np.ndarray) -> None:
        self._buffer = buffer
        self._ends = ends
        """The end offset of each name in `_buffer` (int64; the first name starts at 0)."""

    @classmethod
    def of(cls, paths: Iterable[str | os.PathLike[str]]) -> PathList:
        encoded = [os.fsencode(path) for path in paths]
        ends = np.cumsum(np.fromiter((len(name) for name in encoded), dtype=np.int64, count=len(encoded)))
        return cls(b"".join(encoded), ends)

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> PathList: ...

    def __getitem__(self, index: int | slice) -> Path | PathList:
        if isinstance(index, slice):
            return self.take(range(len(self))[index])
        return Path(self.name(index))

    def name(self, index: int) -> str:
        """The `index`-th name as a string (no `Path` made)."""
        count = len(self._ends)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"path index {index} out of range of {count}")
        start = int(self._ends[index - 1]) if index else 0
        return os.fsdecode(self._buffer[start : int(self._ends[index])])

    def names(self) -> Iterator[str]:
        """Every name as a string, in order."""
        start = 0
        buffer = memoryview(self._buffer)
        for end in self._ends.tolist():
            yield os.fsdecode(bytes(buffer[start:end]))
            start = end

    def __iter__(self) -> Iterator[Path]:
        return (Path(name) for name in self.names())

    def take(self, indices: Sequence[int] | np.ndarray | range) -> PathList:
        """The paths at `indices`, in that order."""
        chosen = np.asarray(indices, dtype=np.int64)
        if len(chosen) == len(self) and (not len(chosen) or np.array_equal(chosen, np.arange(len(self)))):
            return self
        if not len(chosen):
            return PathList(b"", np.zeros(0, dtype=np.int64))
        starts = np.concatenate([[0], self._ends[:-1]])[chosen]
        ends = self._ends[chosen]
        buffer = memoryview(self._buffer)
        return PathList(b"".join(buffer[s:e] for s, e in zip(starts.tolist(), ends.tolist())), np.cumsum(ends - starts))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PathList):
            return self._buffer == other._buffer and np.array_equal(self._ends, other._ends)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == Path(b) for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(repr(name) for name, _ in zip(self.names(), range(3)))
        return f"PathList([{shown}{', ...' if len(self) > 3 else ''}], {len(self)} paths)"

    def nbytes(self) -> int:
        return len(self._buffer) + self._ends.nbytes

    def __getstate__(self) -> tuple[bytes, np.ndarray]:
        return self._buffer, self._ends

    def __setstate__(self, state: tuple[bytes, np.ndarray]) -> None:
        self._buffer, self._ends = state
