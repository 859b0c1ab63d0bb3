"""Images that stop decoding during training: changed, damaged or deleted after they were screened.

Screening (`screen.py`) decides once which files a run uses, and remembers a file by its path, size and
modification time, so a file overwritten in place by a sync tool or a network file system (same size, same
time), damaged on disk or deleted while the run goes on is not screened again. Training does not stop on it:

- the loader decodes the image's stand-in instead, drawn from (index, attempt) alone (`substitute`), so a
  resumed run draws the same stand-ins and stays exact;
- the file is appended to the run's `skipped.jsonl` with the reason (by whichever process met it: loader
  workers and every process of a multi-process run append whole lines, which the file system keeps apart);
- the training loop reads the new lines (`UnreadableWatch`), says each on the console once, and stops the run
  with one line when the files screening skipped and these together pass `data.max_bad_fraction`.

Only decoding is caught: an error in the views themselves (the transform) is hpt's, and is raised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpt.core.seeds import derived_seed
from hpt.data.files import ImageList
from hpt.data.screen import skipped_line
from hpt.errors import HptError, first_line

MAX_ATTEMPTS = 16
"""Stand-ins tried for one image before the loader gives up (16 unreadable in a row: the data is gone)."""
DURING_TRAINING = "unreadable during training"


def substitute(index: int, attempt: int, count: int) -> int:
    """The stand-in for image `index` at its `attempt`-th failure: any other image, from (index, attempt) alone."""
    return (index + 1 + derived_seed(index, attempt) % (count - 1)) % count


@dataclass
class UnreadableFiles:
    """Decodes with stand-ins (see the module's docstring); `report`: the run's `skipped.jsonl`."""

    report: Path
    noted: set[Path] = field(default_factory=set)
    """Files this process has appended already (one line per file, not one per epoch)."""

    def decode(self, decode: Callable[..., Any], images: ImageList, index: int) -> tuple[int, Any]:
        """(the index decoded, its pixels): `index`'s, or its first stand-in's that decodes. `decode(path, frame)`."""
        candidate = index
        for attempt in range(MAX_ATTEMPTS):
            try:
                return candidate, decode(*images.item(candidate))
            except Exception as exc:  # noqa: BLE001 - a file from a user may break a decoder in any way
                self._note(images.paths[candidate], exc)
                if len(images) < 2:
                    break
                candidate = substitute(index, attempt, len(images))
        raise HptError(
            f"{MAX_ATTEMPTS} images in a row could not be decoded (the first: '{images.paths[index]}'); see "
            f"{self.report}"
        )

    def _note(self, path: Path, exc: Exception) -> None:
        if path in self.noted:
            return
        self.noted.add(path)

        reason = f"{DURING_TRAINING} ({type(exc).__name__}: {first_line(exc)}); another image stood in"
        line = skipped_line(path, reason)
        try:
            fd = os.open(self.report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line.encode())  # one write of one line: appends from several processes stay whole
            finally:
                os.close(fd)
        except OSError as exc_write:
            raise HptError(
                f"'{path}' could not be decoded, and '{self.report}' could not be appended to ({exc_write.strerror})"
            ) from None


class UnreadableWatch:
    """The training loop's view of `skipped.jsonl`: the files found unreadable since it last looked."""

    def __init__(
        self,
        report: Path,
        screened: int,
        total: int,
        max_bad_fraction: float,
        streamed: Callable[[], int] | None = None,
    ) -> None:
        self.report, self.screened, self.total, self.max_bad_fraction = report, screened, total, max_bad_fraction
        """`screened`: files screening skipped; `total`: every file of the data, those included."""
        self.streamed = streamed
        """Shards streamed: the images trained on so far, the count the bad ones are a share of."""
        self.offset = report.stat().st_size if report.is_file() else 0
        self.found: dict[str, str] = {}

    def new(self) -> dict[str, str]:
        """Files appended since the last look, {path: reason}; an error once too many files are unusable."""
        try:
            size = self.report.stat().st_size
        except OSError:
            return {}
        if size <= self.offset:
            return {}
        with open(self.report, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written is read next time
        self.offset += len(whole)
        fresh = {}
        for record in map(json.loads, whole.decode().splitlines()):
            if record["path"] not in self.found:
                fresh[record["path"]] = self.found[record["path"]] = record["reason"]
        bad, total = self.screened + len(self.found), self.total
        if self.streamed is not None:
            total = max(total, self.streamed() + bad)
        if fresh and bad > self.max_bad_fraction * total:
            first = next(iter(self.found))
            raise HptError(
                f"data: {bad} of {total} files cannot be used ({len(self.found)} of them found unreadable "
                f"during training, e.g. '{first}'), more than data.max_bad_fraction ({self.max_bad_fraction:.0%}) "
                f"allows; listed in {self.report}; the last checkpoint is intact"
            )
        return fresh
