"""What data a run trained on, recorded so that `--resume` can tell whether it is still the same.

A resumed run is bit for bit the uninterrupted one only on the same images: the order of every batch is drawn
over the list of images, so one file added or removed reshuffles every batch after it. The run folder keeps
`data.json`: each usable file's path, size and modification time (the screened list, with the sizes and times
its listing stat-ed: no file is stat-ed twice), and the sha256 of the bytes of a fixed sample of them (`SAMPLE`
files), which catches a file rewritten in place with the same size and time. `--resume` compares it with the
data as it is now and refuses a difference, naming the counts of added, removed and changed files, unless
`--allow-data-change` is given (then the change is recorded in the run's provenance). Its sha256 (`digest`) is
in every file's provenance.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpt.core.atomic import write_chunks_atomic
from hpt.data.files import ImageList
from hpt.data.paths import PathList
from hpt.data.shards import Shards
from hpt.data.walk import stat_all
from hpt.errors import HptError

SAMPLE = 16
"""Files whose bytes are hashed: a content check that costs 16 reads, whatever the size of the data."""


@dataclass(frozen=True)
class DataChanges:
    added: list[str]
    removed: list[str]
    changed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        counts = f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"
        example = next(iter(self.added or self.removed or self.changed), None)
        return f"{counts} (e.g. '{example}')" if example else counts

    def to_dict(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed)}


@dataclass(frozen=True, eq=False)
class DataFingerprint:
    paths: PathList
    """The files, in the order they were listed (a folder's: sorted)."""
    sizes: np.ndarray
    mtimes: np.ndarray
    """int64, beside `paths`: size in bytes, modification time in ns (-1: gone since it was listed)."""
    sample: dict[str, str]
    """Path -> sha256 of its bytes, for a fixed sample of the files."""

    @classmethod
    def of(cls, images: ImageList, seed: int = 0) -> DataFingerprint:
        """Of `images`' files (once each, where several images are frames of one), from the sizes and times
        their listing stat-ed (else stat-ed here)."""
        first = np.arange(len(images))
        if images.frames is not None:
            first = np.array([i for i, frame in enumerate(images.frames) if frame == 0], dtype=np.int64)
        paths = images.paths.take(first)
        stats = images.stats[first] if images.stats is not None else stat_all(list(paths.names()))
        count = len(paths)
        chosen = sorted(random.Random(seed).sample(range(count), min(SAMPLE, count)))
        sample = {name: _sha256(name) for name in (paths.name(i) for i in chosen)}
        return cls(paths, stats[:, 0].copy(), stats[:, 1].copy(), sample)

    @classmethod
    def of_shards(cls, shards: Shards) -> DataFingerprint:
        """Of tar shards: each one's location (credentials left out), size, and its ETag or time (hashed to an
        int64 where the time column is): a shard rewritten is a change; nothing of them is read."""
        tags = [int.from_bytes(hashlib.sha256(tag.encode()).digest()[:8], "little", signed=True) for tag in shards.tags]
        names = PathList.of(shards.shown(i) for i in range(len(shards)))
        return cls(names, np.array(shards.sizes, dtype=np.int64), np.array(tags, dtype=np.int64), {})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataFingerprint):
            return NotImplemented
        same = np.array_equal(self.sizes, other.sizes) and np.array_equal(self.mtimes, other.mtimes)
        return same and self.paths == other.paths and self.sample == other.sample

    __hash__ = None  # type: ignore[assignment]

    def digest(self) -> str:
        """sha256 of the names, sizes, times and the sample's hashes (their raw bytes: no copy of them made)."""
        digest = hashlib.sha256(b"hpt data fingerprint, format 2\n")
        buffer, ends = self.paths.__getstate__()
        digest.update(buffer)
        for values in (ends, self.sizes, self.mtimes):
            digest.update(np.ascontiguousarray(values, dtype="<i8").data)
        digest.update(json.dumps(self.sample, sort_keys=True).encode())
        return digest.hexdigest()

    def write(self, path: Path) -> None:
        """`to_dict()` as JSON in `path` (atomically), written in pieces: a million files' base64 never whole
        in memory."""
        buffer, ends = self.paths.__getstate__()
        fields = {"names": buffer, "ends": _raw(ends), "sizes": _raw(self.sizes), "mtimes": _raw(self.mtimes)}

        def pieces() -> Iterator[bytes]:
            yield f'{{"format": 2, "files": {len(self.paths)}'.encode()
            for name, data in fields.items():
                yield f', "{name}": "'.encode()
                view = memoryview(data)
                for start in range(0, len(view), PIECE):  # a multiple of 3 bytes: base64 pieces join as one
                    yield base64.b64encode(view[start : start + PIECE])
                yield b'"'
            yield b', "sample_sha256": ' + json.dumps(self.sample).encode() + b"}\n"

        write_chunks_atomic(path, pieces())

    def changes_to(self, now: DataFingerprint) -> DataChanges:
        """What differs in `now`: files added, removed, and changed (size, time, or the sampled bytes)."""
        if self.paths == now.paths:  # the same files in the same order: compared as arrays, no name made
            differ = (self.sizes != now.sizes) | (self.mtimes != now.mtimes)
            added, removed, changed = [], [], [self.paths.name(i) for i in np.flatnonzero(differ).tolist()]
            present = None
        else:
            then, present = self._by_name(), now._by_name()
            added = sorted(set(present) - set(then))
            removed = sorted(set(then) - set(present))
            changed = sorted(name for name in set(then) & set(present) if then[name] != present[name])
        sampled = [
            name
            for name, digest in self.sample.items()
            if name not in changed and (present is None or name in present) and _sha256(name) != digest
        ]
        return DataChanges(added, removed, sorted(changed + sampled))

    def _by_name(self) -> dict[str, tuple[int, int]]:
        return dict(zip(self.paths.names(), zip(self.sizes.tolist(), self.mtimes.tolist())))

    def to_dict(self) -> dict[str, Any]:
        """data.json: the names, sizes and times as base64 of their buffers (a million files in ~50 MB, read back
        without a string a file), the sample's sha256, and how many files it holds."""
        buffer, ends = self.paths.__getstate__()
        return {
            "format": 2,
            "files": len(self.paths),
            "names": _b64(buffer),
            "ends": _b64(ends.astype("<i8").tobytes()),
            "sizes": _b64(self.sizes.astype("<i8").tobytes()),
            "mtimes": _b64(self.mtimes.astype("<i8").tobytes()),
            "sample_sha256": self.sample,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> DataFingerprint:
        if record.get("format") == 2:
            paths = PathList(base64.b64decode(record["names"]), _int64s(record["ends"]))
            return cls(paths, _int64s(record["sizes"]), _int64s(record["mtimes"]), dict(record["sample_sha256"]))
        rows = record["files"]  # hpt 0.6 and 0.7: [[name, size, time], ...]
        return cls(
            PathList.of(str(name) for name, _, _ in rows),
            np.array([int(size) for _, size, _ in rows], dtype=np.int64),
            np.array([int(mtime) for _, _, mtime in rows], dtype=np.int64),
            dict(record["sample_sha256"]),
        )

    @classmethod
    def read(cls, path: Path) -> DataFingerprint | None:
        """The fingerprint a run folder recorded; None when it has none (a run of hpt before 0.6)."""
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HptError(f"--resume: '{path}' is not a data fingerprint hpt wrote ({type(exc).__name__})") from None


PIECE = 3 << 20
"""Bytes base64-encoded at a time when data.json is written."""


def _raw(values: np.ndarray) -> bytes:
    return values.astype("<i8").tobytes()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _int64s(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i8").astype(np.int64)


def _sha256(name: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "unreadable"
    return digest.hexdigest()
