"""Screening a dataset's files before any work: what cannot be used is skipped, counted and named.

Real folders hold empty files, files cut short by a failed copy, HTML pages saved as `.jpg`, files the job
may not read, float tiles with nothing but NaN, and images whose header claims billions of pixels
(decompression bombs). Each file is opened and decoded once, in a thread per core (PIL decodes without holding
the interpreter lock): a bomb is caught from its header alone, before any pixel is decoded (PIL's size, a
TIFF's or `.npy`'s shape, DICOM's rows, columns and frames); JPEGs are decoded at reduced scale (PIL's draft
mode reads all of the compressed data, so a truncated file still fails, at a fraction of the cost). Memory is
bounded: a file whose header says it decodes to more than `LARGE_DECODE_BYTES` waits for any other such file
to finish, so that a folder of large files is decoded one large file at a time, not one per core.

What was found is remembered per file in `$HPT_CACHE_DIR/screen.sqlite`, keyed by the file's path, identity
(device and inode), size, modification time and permissions (and the pixel limit), hashed to 16 bytes: a dataset
is screened once, not once per run, and adding or changing one file of a screened folder screens that file alone.
The keys come from the listing's own stat of each file (`walk.py`), and a folder is screened in chunks, so that
a million files cost neither a second stat each nor a dictionary of a million keys.

A run goes on without the bad files when they are at most `max_bad_fraction` of the data; above that the
data is probably not what the user meant, and the run stops before it starts (`TooManyUnusable`) with the
reasons counted ("21 x compressed as JPEG Lossless ...: pip install ...; 2 x empty file") and every file listed
with its reason (`skipped.jsonl`, where the command writes).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import stat
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hpt.config import DataConfig
from hpt.data import bands, dicom
from hpt.data.cache import cache_dir
from hpt.data.dicom import DICOM_SUFFIX, Header
from hpt.data.paths import PathList
from hpt.data.walk import stat_all
from hpt.errors import HptError, first_line


@dataclass(frozen=True)
class ScreenPolicy:
    """`data.max_image_pixels` and `data.max_bad_fraction`; the defaults are the config's."""

    max_image_pixels: int = DataConfig.model_fields["max_image_pixels"].default
    max_bad_fraction: float = DataConfig.model_fields["max_bad_fraction"].default

    @classmethod
    def of(cls, data: DataConfig) -> ScreenPolicy:
        return cls(data.max_image_pixels, data.max_bad_fraction)


SCREENING_RULES = "v4"
"""In every cache key: files screened by earlier rules are screened again (v2: all-NaN files and header checks;
v3: DICOM from its header, band-sequential TIFFs and GDAL no-data; v4: GIFs read, EXIF orientation applied,
empty arrays named as such)."""
LARGE_DECODE_BYTES = 256 << 20
"""A file that decodes to more than this is screened while no other such file is (see the module's docstring)."""
_large_decode = threading.Lock()


@contextlib.contextmanager
def _decoding(size: int) -> Iterator[None]:
    """Around the decoding of `size` bytes: one large decode at a time across screening's threads."""
    if size <= LARGE_DECODE_BYTES:
        yield
        return
    with _large_decode:
        yield


def non_regular_problem(path: Path) -> str | None:
    """Why a directory entry with an image's name is not a file to read (never opened: a FIFO would block)."""
    if path.is_symlink() and not path.exists():
        return "dangling symbolic link"
    mode = os.stat(path).st_mode  # a missing file or a denied folder: the caller's reason
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    return f"not a regular file (a {kind})"


def problem_with(
    path: Path, max_image_pixels: int = ScreenPolicy.max_image_pixels, headers: dict[Path, Header] | None = None
) -> str | None:
    """Why `path` cannot be used as an image, or None when it decodes. `headers`: where a DICOM file's header
    is put, read once for screening and for what comes after (`dicom_headers`)."""
    try:
        if (odd := non_regular_problem(path)) is not None:
            return odd
        if os.stat(path).st_size == 0:
            return "empty file"
        if path.suffix.lower() == DICOM_SUFFIX:
            header = dicom.read_header(path)  # the header alone: decoding errors are met in training
            if headers is not None:
                headers[path] = header
            return over_pixel_limit(header.width, header.height, max_image_pixels)
        if path.suffix.lower() in bands.ARRAY_SUFFIXES or (
            path.suffix.lower() in bands.TIFF_SUFFIXES and bands.band_count(path) != 3
        ):
            return _bands_problem(path, max_image_pixels)
        with Image.open(path) as image:
            width, height = image.size
            if over := over_pixel_limit(width, height, max_image_pixels):
                return over
            if image.format == "JPEG":
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            with _decoding(width * height * 8):  # at most 8 bytes a pixel (RGBA at 16 bits, double floats)
                image.load()
            if image.mode == "F" and not np.isfinite(np.asarray(image)).any():
                return ALL_NON_FINITE
    except FileNotFoundError:
        return "does not exist"
    except PermissionError:
        return "permission denied"
    except UnidentifiedImageError:
        return "not an image"
    except (dicom.DicomProblem, bands.NeedsTifffile) as exc:  # said as they are: each names its remedy
        return str(exc)
    except Image.DecompressionBombError as exc:
        return f"decompression bomb ({first_line(exc)})"
    except Exception as exc:  # noqa: BLE001 - a file from a user may break a decoder in any way
        return f"truncated or corrupt ({type(exc).__name__}: {first_line(exc)})"
    return None


def over_pixel_limit(width: int, height: int, max_image_pixels: int) -> str | None:
    """The reason a `width` x `height` image is refused unread, or None when it is within the limit."""
    if width * height <= max_image_pixels:
        return None
    return f"over the limit of {max_image_pixels} pixels, data.max_image_pixels ({width} x {height} pixels)"


ALL_NON_FINITE = "every value is no-data, NaN or infinite"
MAX_BANDS = 64
"""The most bands `data.channels` takes: a file's values are bounded by the pixel limit times this."""


def _bands_problem(path: Path, max_image_pixels: int) -> str | None:
    """A multi-band file's problem, its header checked before any value is decoded."""
    try:
        shape, dtype = bands.header_shape(path)
    except bands.NotOneImage as exc:  # pages of a stack: said as it is, not as a damaged file
        return first_line(exc)
    if dtype.hasobject:
        return "an array of Python objects: refused, never unpickled (allow_pickle=False)"
    if dtype.kind not in "uif":
        return f"an array of {dtype}, not numbers"
    if len(shape) not in (2, 3):
        return f"expected an H x W or H x W x C array, got shape {shape}"
    height, width = shape[:2]
    if not height or not width or (len(shape) == 3 and not shape[2]):
        return f"an empty array (shape {shape}): no pixels"
    if over := over_pixel_limit(width, height, max_image_pixels):
        return over
    if (count := int(np.prod(shape))) > max_image_pixels * MAX_BANDS:  # a series of many pages, say
        return f"{count} values ({' x '.join(map(str, shape))}), over data.max_image_pixels x {MAX_BANDS} bands"
    with _decoding(int(np.prod(shape)) * dtype.itemsize):
        values = bands.read_bands(path)
    if values.dtype.kind == "f" and not np.isfinite(values).any():
        return ALL_NON_FINITE
    return None


CHUNK = 20_000
"""Files screened at a time: the keys and results of a chunk are all that is held at once, whatever the folder."""


def screen(
    paths: PathList | Sequence[Path], what: str, policy: ScreenPolicy, stats: np.ndarray | None = None
) -> dict[Path, str]:
    """The unusable files among `paths`, each with its reason; an error when too many of them are bad. `stats`:
    each file's `walk.FIELDS` as listed (else each is stat-ed here)."""
    names = paths.names() if isinstance(paths, PathList) else (os.fspath(path) for path in paths)
    limit, total = policy.max_image_pixels, len(paths)
    bad: dict[Path, str] = {}
    with ScreenCache() as cache, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for start in range(0, total, CHUNK):
            chunk = list(itertools.islice(names, CHUNK))
            rows = (stats[start : start + len(chunk)] if stats is not None else stat_all(chunk)).tolist()
            reasons = _screen_chunk(chunk, rows, limit, cache, pool)
            bad.update((Path(chunk[i]), reason) for i, reason in enumerate(reasons) if reason is not None)
    if len(bad) > policy.max_bad_fraction * total or len(bad) == total:
        raise TooManyUnusable(what, bad, total, policy.max_bad_fraction)
    return bad


def _screen_chunk(
    names: list[str], stats: list[list[int]], limit: int, cache: ScreenCache, pool: ThreadPoolExecutor
) -> list[str | None]:
    """Each file's reason (None: usable): remembered, or found now (in `pool`) and remembered, with the headers of
    the DICOM files among them."""
    keys = [_key(name, row, limit) for name, row in zip(names, stats)]
    known = cache.lookup([key for key in keys if key is not None])
    todo = [i for i, key in enumerate(keys) if key is None or key not in known]
    headers: dict[Path, Header] = {}
    found = dict(zip(todo, pool.map(partial(_problem, limit=limit, headers=headers), (names[i] for i in todo))))
    cache.store([(key, found[i]) for i in todo if (key := keys[i]) is not None])
    if headers:  # DICOM files read now: their headers kept for `dicom_headers`, under the files' own keys
        by_name = {os.fspath(path): header for path, header in headers.items()}
        keyed = ((_key(name, row, 0), by_name[name]) for name, row in zip(names, stats) if name in by_name)
        cache.store_headers([(key, header) for key, header in keyed if key is not None])
    return [found[i] if key is None or i in found else known[key] for i, key in enumerate(keys)]


def _problem(name: str, limit: int, headers: dict[Path, Header]) -> str | None:
    return problem_with(Path(name), limit, headers)


def dicom_headers(paths: PathList | Sequence[Path], stats: np.ndarray | None = None) -> dict[Path, Header]:
    """The usable DICOM files among `paths`, each with its header (`dicom.Header`: frames, modality, window):
    those screening read, from the cache it left them in; any other read here, in threads, and kept there."""
    names = list(paths.names() if isinstance(paths, PathList) else map(os.fspath, paths))
    chosen = [i for i, name in enumerate(names) if name.lower().endswith(DICOM_SUFFIX)]
    if not chosen:
        return {}
    rows = stats[chosen] if stats is not None else stat_all([names[i] for i in chosen])
    keys = [_key(names[i], row, 0) for i, row in zip(chosen, rows.tolist())]
    found: dict[Path, Header] = {}
    with ScreenCache() as cache:
        known = cache.lookup_headers([key for key in keys if key is not None])
        todo = [i for i, key in zip(chosen, keys) if key is None or key not in known]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            read = dict(zip(todo, pool.map(lambda i: _header_or_none(Path(names[i])), todo, chunksize=64)))
        cache.store_headers([(key, header) for i, key in zip(chosen, keys) if key and (header := read.get(i))])
        for i, key in zip(chosen, keys):
            header = read[i] if i in read else known.get(key) if key is not None else None
            if header is not None:
                found[Path(names[i])] = header
    return found


def _header_or_none(path: Path) -> Header | None:
    try:
        return dicom.read_header(path)
    except dicom.DicomProblem:
        return None  # screening's to name


class TooManyUnusable(HptError):
    """More unusable files than `data.max_bad_fraction` allows: the reasons counted in the message, every file
    kept (`bad`) for the command to list where it writes (`listed_in`)."""

    def __init__(self, what: str, bad: dict[Path, str], total: int, max_bad_fraction: float, listed: str = ""):
        self.what, self.bad, self.total, self.max_bad_fraction = what, bad, total, max_bad_fraction
        first, reason = next(iter(bad.items()))
        super().__init__(
            f"{what}: {len(bad)} of {total} files cannot be used, more than data.max_bad_fraction "
            f"({max_bad_fraction:.0%}) allows: {reasons_by_count(bad)}; the first: '{first}': {reason}"
            + (f"; {listed}" if listed else "")
        )

    def listed_in(self, report: Path) -> TooManyUnusable:
        """The same refusal, every file written to `report` (`skipped.jsonl`'s form) and the message naming it;
        where it cannot be written, the refusal as it was."""
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(skipped_report(self.bad))
        except OSError:
            return self
        listed = f"every one with its reason in {report}"
        return TooManyUnusable(self.what, self.bad, self.total, self.max_bad_fraction, listed)


def listing_beside(out: Path) -> Path:
    """Where a command that writes `out` (eval.json, a ranking) lists the files of a refused start: beside it,
    `eval.json` -> `eval.skipped.jsonl`."""
    return out.with_name(out.name.split(".")[0] + ".skipped.jsonl")


SHOWN_REASONS = 4
"""Kinds of reason a summary names; the rest are counted together."""


def reasons_by_count(bad: dict[Path, str]) -> str:
    """'21 x compressed as ...: pip install ...; 2 x empty file': unusable files counted by kind of reason (a
    reason less its trailing detail in brackets: the decoder's own message, a count), the commonest first."""
    kinds = Counter(_without_detail(reason) for reason in bad.values()).most_common()
    if len(kinds) <= SHOWN_REASONS + 1:
        return "; ".join(f"{count} x {kind}" for kind, count in kinds)
    rest = sum(count for _, count in kinds[SHOWN_REASONS:])
    shown = [f"{count} x {kind}" for kind, count in kinds[:SHOWN_REASONS]]
    return "; ".join([*shown, f"{rest} x {len(kinds) - SHOWN_REASONS} other reasons"])


def _without_detail(reason: str) -> str:
    """`reason` less a trailing bracketed detail, brackets nested in it included."""
    if not reason.endswith(")"):
        return reason
    depth = 0
    for at in range(len(reason) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(reason[at], 0)
        if depth == 0:
            return reason[:at].rstrip() or reason
    return reason


def _key(name: str, stat: list[int], max_image_pixels: int) -> bytes | None:
    """What a file's screening result depends on, hashed to 16 bytes; None when it could not be stat-ed (screened
    every time). `stat`: its `walk.FIELDS`."""
    size, mtime, mode, device, inode = stat
    if size < 0:
        return None
    key = f"{SCREENING_RULES}\0{name}\0{device}:{inode}\0{size}\0{mtime}\0{mode}\0{max_image_pixels}"
    return hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=16).digest()


class ScreenCache:
    """Screening results by file (see the module's docstring). An unusable cache (read-only home, a damaged
    database) costs re-screening, nothing else; several processes may use it at once (SQLite's locking)."""

    BATCH = 900  # SQLite's limit on parameters per statement is 999 in older builds
    TABLE = "screened_v3"
    HEADERS = "dicom_headers_v1"
    """What a DICOM file's header says (`dicom.Header`, as JSON), by the same keys: read once, by screening."""
    """16-byte keys (`_key`): a million files in about 40 MB. (`screened`, the table of hpt before 0.8, is not read.)"""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        try:
            cache_dir().mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(cache_dir() / "screen.sqlite", timeout=60)
            for name, column in ((self.TABLE, "reason"), (self.HEADERS, "header")):
                self.db.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} (key BLOB PRIMARY KEY, {column} TEXT) WITHOUT ROWID"
                )
        except (sqlite3.Error, OSError):
            self.db = None

    def __enter__(self) -> ScreenCache:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.db is not None:
            self.db.close()

    def lookup(self, keys: list[bytes]) -> dict[bytes, str | None]:
        found: dict[bytes, str | None] = {}
        if self.db is None:
            return found
        try:
            for start in range(0, len(keys), self.BATCH):
                chunk = keys[start : start + self.BATCH]
                marks = ",".join("?" * len(chunk))
                found.update(self.db.execute(f"SELECT key, reason FROM {self.TABLE} WHERE key IN ({marks})", chunk))
        except sqlite3.Error:
            return {}
        return found

    def lookup_headers(self, keys: list[bytes]) -> dict[bytes, Header]:
        """DICOM headers by file key (`dicom_headers`)."""
        found: dict[bytes, Header] = {}
        if self.db is None:
            return found
        try:
            for start in range(0, len(keys), self.BATCH):
                chunk = keys[start : start + self.BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self.db.execute(f"SELECT key, header FROM {self.HEADERS} WHERE key IN ({marks})", chunk)
                found.update((key, Header(*json.loads(text))) for key, text in rows)
        except (sqlite3.Error, ValueError, TypeError):
            return {}
        return found

    def store_headers(self, headers: list[tuple[bytes, Header]]) -> None:
        if self.db is None or not headers:
            return
        rows = [(key, json.dumps(astuple(header))) for key, header in headers]
        try:
            with self.db:
                self.db.executemany(f"INSERT OR REPLACE INTO {self.HEADERS} (key, header) VALUES (?, ?)", rows)
        except sqlite3.Error:
            pass

    def store(self, results: list[tuple[bytes, str | None]]) -> None:
        if self.db is None or not results:
            return
        try:
            with self.db:
                self.db.executemany(f"INSERT OR REPLACE INTO {self.TABLE} (key, reason) VALUES (?, ?)", results)
        except sqlite3.Error:
            pass


def skipped_report(bad: dict[Path, str]) -> str:
    """`skipped.jsonl`: one JSON object `{"path": ..., "reason": ...}` per skipped file, so that any name (a tab,
    a newline, bytes that are not UTF-8) survives; `read_skipped` reads it back."""
    return "".join(skipped_line(path, reason) for path, reason in bad.items())


def skipped_line(path: Path, reason: str) -> str:
    return json.dumps({"path": os.fsdecode(path), "reason": reason}) + "\n"


def read_skipped(report: Path) -> dict[str, str]:
    """`skipped.jsonl` as {path: reason}, in the order written."""
    return {record["path"]: record["reason"] for record in map(json.loads, report.read_text().splitlines())}
