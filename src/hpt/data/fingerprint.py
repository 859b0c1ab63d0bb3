"""What data a run trained on, recorded so that `--resume` can tell whether it is still the same.

A resumed run is bit for bit the uninterrupted one only on the same images: the order of every batch is drawn
over the list of images, so one file added or removed reshuffles every batch after it. The run folder keeps
`data.json`: each usable file's path, size and modification time (the screened list), and the sha256 of the
bytes of a fixed sample of them (`SAMPLE` files), which catches a file rewritten in place with the same size
and time. `--resume` compares it with the data as it is now and refuses a difference, naming the counts of
added, removed and changed files, unless `--allow-data-change` is given (then the change is recorded in the
run's provenance). Its sha256 (`digest`) is in every file's provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class DataFingerprint:
    files: dict[str, tuple[int, int]]
    """Path -> (size in bytes, modification time in ns)."""
    sample: dict[str, str]
    """Path -> sha256 of its bytes, for a fixed sample of the files."""

    @classmethod
    def of(cls, paths: list[Path], seed: int = 0) -> DataFingerprint:
        files = {}
        for path in paths:
            try:
                st = os.stat(path)
                files[os.fsdecode(path)] = (st.st_size, st.st_mtime_ns)
            except OSError:
                files[os.fsdecode(path)] = (-1, -1)  # gone since screening: a difference like any other
        names = sorted(files)
        chosen = sorted(random.Random(seed).sample(names, min(SAMPLE, len(names))))
        return cls(files, {name: _sha256(name) for name in chosen})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def changes_to(self, now: DataFingerprint) -> DataChanges:
        """What differs in `now`: files added, removed, and changed (size, time, or the sampled bytes)."""
        added = sorted(set(now.files) - set(self.files))
        removed = sorted(set(self.files) - set(now.files))
        changed = sorted(
            name
            for name in set(self.files) & set(now.files)
            if self.files[name] != now.files[name] or (name in self.sample and _sha256(name) != self.sample[name])
        )
        return DataChanges(added, removed, changed)

    def to_dict(self) -> dict[str, Any]:
        return {"files": [[name, *stat] for name, stat in sorted(self.files.items())], "sample_sha256": self.sample}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> DataFingerprint:
        return cls(
            {name: (int(size), int(mtime)) for name, size, mtime in record["files"]}, dict(record["sample_sha256"])
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


def _sha256(name: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "unreadable"
    return digest.hexdigest()
