"""WebDataset tar shards, on a local disk or wherever fsspec reaches, streamed to training.

`--data 'shards/train-{000000..000099}.tar'` (braces as WebDataset writes them), a single `.tar`, a folder of
nothing but `.tar` files, or the same as an fsspec URL (`https://`, `s3://` with s3fs installed, ...). The shards
are listed (one `info` each: size, and the ETag or time that changes when one is rewritten), never downloaded
whole, and nothing is read of them before training but a small sample:

- **the sample** (`sample_folder`): up to `SAMPLE` images read from the start of a seeded choice of shards and
  written as files to the cache folder (`$HPT_CACHE_DIR/shards/`, once per set of shards): the pixel statistics,
  the intensity window, the band count, `views.png`, the label-free monitor and the adaptations before step 0 are
  measured on it, by the same code as a folder's;
- **the stream** (`ShardStream`): each loader process of each training process reads its own shards (a seeded
  permutation of them each epoch, dealt out in turn, so several processes never read one shard twice in an epoch),
  samples in the order the tar holds them through a seeded shuffle buffer, each decoded by writing its image to a
  scratch file and reading it as any file (`decode.py`: windows, bands and DICOM alike) and given its views under a
  seed of its own. A sample that does not decode (or holds no image) is listed in `skipped.jsonl` as `SHARD#KEY`
  and passed over, which the stream does the same way every time.

Every batch carries, for its loader process, the epoch and the samples of it read so far (`positions`); the
checkpoint keeps each one's, so that `--resume` starts each loader process in its epoch and reads (without
decoding) only what that epoch had read before. A resume needs the loader processes it started with. Images are
read through WebDataset's tar reader (`tar_file_iterator`, `group_by_keys`) from a stream fsspec opened; only the
image member of a sample is used (its first by `files.IMAGE_SUFFIXES`), never a pickle or any other member.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from hpt.core.seeds import derived_seed
from hpt.data.cache import cache_dir
from hpt.data.decode import Decoding
from hpt.data.locations import carries_secrets, is_url, missing_implementation, shown
from hpt.data.screen import skipped_line
from hpt.data.walk import THREADS
from hpt.errors import HptError, first_line

SHARD_SUFFIXES = (".tar",)
IMAGE_MEMBERS = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "dcm", "npy")
"""The members of a sample read as its image, in this order of preference (WebDataset's suffixes, lower case)."""
SAMPLE = 1000
"""Images of the shards written to the cache for what is measured before training (statistics, the window, ...)."""
SAMPLE_SHARDS = 16
"""Shards the sample is drawn from (the first images of each, a seeded choice of shards)."""
BUFFER = 256
"""Samples a loader process shuffles among (WebDataset's shuffle buffer): more mixes shards more, and holds as many
samples' bytes in memory."""


@dataclass(frozen=True)
class Shards:
    urls: tuple[str, ...]
    """Each shard as it is opened: a local path or an fsspec URL."""
    sizes: tuple[int, ...]
    tags: tuple[str, ...]
    """What changes when a shard is rewritten: its ETag, else its modification time."""
    files: bool = False
    """Each unit is one image file (a bucket's folder of images), not a tar of many."""

    def __len__(self) -> int:
        return len(self.urls)

    def shown(self, index: int) -> str:
        return shown(self.urls[index])

    def key(self) -> str:
        """A name over every shard's location, size and tag: the sample's cache folder."""
        text = json.dumps([[shown(u), s, t] for u, s, t in zip(self.urls, self.sizes, self.tags)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_sharded(spec: str) -> bool:
    """Whether `spec` is streamed: tar shards (a pattern, a `.tar`, a folder of them) anywhere, any URL (a
    bucket's folder of image files, streamed file by file), or a local list of URLs. Cheap: nothing is listed."""
    expanded = _expanded(spec)
    return (
        any(p.lower().endswith(SHARD_SUFFIXES) for p in expanded)
        or is_url(spec)
        or _folder_of_shards(spec)
        or _list_of_urls(spec)
    )


def find_shards(spec: str, what: str = "data") -> Shards:
    """The shards `spec` names, each stat-ed (one `info`), or one line naming the one that is missing. A URL that
    carries credentials (a user name, a password, a query such as a signature) is refused: the location is written
    into config.yaml and every record, where no secret belongs; each library reads its own from its environment."""
    if carries_secrets(spec):
        raise HptError(
            f"{what} '{shown(spec)}...': the URL carries a user, a password or a query (a signature?), which would be "
            "written into config.yaml and every record; give the location alone and the credentials as the library "
            "reads them (AWS_ACCESS_KEY_ID / ~/.aws, GOOGLE_APPLICATION_CREDENTIALS, an fsspec config)"
        )
    if _list_of_urls(spec):
        return _rows(Path(spec), what)
    fs, names = _filesystem(spec, what)
    if not any(name.lower().endswith(SHARD_SUFFIXES) for name in names):  # a folder or a prefix: what it holds
        return _listed(fs, spec, names[0].rstrip("/"), what)
    sizes, tags, urls = [], [], []
    for name in names:
        try:
            info = fs.info(name)
        except FileNotFoundError:
            raise HptError(f"{what}: shard '{shown(_url(fs, name))}' does not exist") from None
        except Exception as exc:  # noqa: BLE001 - a network error of any library: one line naming the shard
            raise HptError(f"{what}: shard '{shown(_url(fs, name))}' cannot be reached ({first_line(exc)})") from None
        urls.append(_url(fs, name))
        sizes.append(int(info.get("size") or 0))
        tags.append(_tag(info))
    return Shards(tuple(urls), tuple(sizes), tuple(tags))


def _listed(fs: Any, spec: str, root: str, what: str) -> Shards:
    """A folder or prefix: its .tar shards, else its image files (each a unit of the stream), with the sizes and
    tags its listing gives (one listing, no `info` a file)."""
    from hpt.data.files import IMAGE_SUFFIXES

    found = _listing(fs, root, spec, what)
    for suffixes, files in ((SHARD_SUFFIXES, False), (IMAGE_SUFFIXES, True)):
        chosen = sorted(name for name in found if name.lower().endswith(suffixes))
        if chosen:
            return _described(fs, chosen, found, files)
    raise HptError(f"{what} '{shown(spec)}' holds no .tar shards and no images")


def _listing(fs: Any, root: str, spec: str, what: str) -> dict[str, dict[str, Any]]:
    try:
        return dict(fs.find(root, detail=True))
    except FileNotFoundError:
        raise HptError(f"{what} '{shown(spec)}' does not exist") from None
    except Exception as exc:  # noqa: BLE001 - a network error of any library
        raise HptError(f"{what} '{shown(spec)}' cannot be listed ({first_line(exc)})") from None


def _described(fs: Any, chosen: list[str], found: dict[str, dict[str, Any]], files: bool) -> Shards:
    """`chosen` (names as `fs` lists them) with the sizes and tags of the listing `found`, each asked where the
    listing gives none (an HTTP index)."""
    entries = [found[name] for name in chosen]
    if any(not entry.get("size") for entry in entries):
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            entries = list(pool.map(lambda name: fs.info(name), chosen))
    urls = tuple(_url(fs, name) for name in chosen)
    return Shards(urls, tuple(int(e.get("size") or 0) for e in entries), tuple(map(_tag, entries)), files)


def _list_of_urls(spec: str) -> bool:
    """A local list (`.txt`, `.lst`) or table (`.csv` with a `path` column first) whose first row names a URL: its
    rows stream file by file. Reads up to its first row."""
    from hpt.data.files import LIST_SUFFIXES, TABLE_SUFFIXES

    if is_url(spec) or not spec.lower().endswith(LIST_SUFFIXES + TABLE_SUFFIXES) or not os.path.isfile(spec):
        return False
    first = next(_entries(Path(spec)), None)
    return first is not None and is_url(first[1][0])


def _entries(list_file: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each row: a list's whitespace-separated fields (blank and `#` lines left out), a
    table's columns after its header."""
    with open(list_file, newline="", errors="replace") as f:
        if list_file.suffix.lower() != ".csv":
            for number, line in enumerate(f, start=1):
                if (fields := line.split()) and not fields[0].startswith("#"):
                    yield number, fields
            return
        rows = ((number, row) for number, row in enumerate(csv.reader(f), start=1) if row and row[0].strip())
        header = next(rows, None)
        if header is not None and header[1][0].strip().lower() == "path":
            yield from ((number, [field.strip() for field in row]) for number, row in rows)


def _rows(list_file: Path, what: str) -> Shards:
    """The image files a list of URLs names (`URL [LABEL]` a line, or a table's `path` column; labels are not read:
    pretraining has none), each a unit of the stream; their sizes and tags from one listing of the folder they
    share (each asked where the listing lacks it), or one line naming the row that is wrong."""
    rows: list[tuple[int, str]] = []
    table = list_file.suffix.lower() == ".csv"
    for number, fields in _entries(list_file):
        where = f"{what} '{list_file}' line {number}"
        if len(fields) > 2 and not table:
            raise HptError(f"{where}: expected 'URL [LABEL]', got {len(fields)} fields")
        if not is_url(fields[0]):
            raise HptError(f"{where}: '{fields[0]}' is not a URL, where the first row is: a list names URLs only")
        if carries_secrets(fields[0]):
            raise HptError(f"{where}: '{shown(fields[0])}...' carries a user, a password or a query (a signature?), "
                           "which would be written into every record; give the location alone")  # fmt: skip
        rows.append((number, fields[0]))
    schemes = {url.split("://", 1)[0].lower() for _, url in rows}
    if len(schemes) > 1:
        raise HptError(f"{what} '{list_file}' mixes {', '.join(sorted(schemes))}: one list, one file system")
    fs, _ = _filesystem(rows[0][1], what)
    names = [fs._strip_protocol(url) for _, url in rows]
    found = _listing(fs, _shared_folder(names), str(list_file), what)
    for (number, url), name in zip(rows, names):
        if name not in found:
            raise HptError(f"{what} '{list_file}' line {number}: '{shown(url)}' does not exist")
    return _described(fs, names, found, files=True)


def _shared_folder(names: list[str]) -> str:
    """The deepest folder every name is in (split at `/`, so a URL's `//` stays whole)."""
    return "/".join(os.path.commonprefix([name.split("/")[:-1] for name in names])) + "/"


def _tag(info: dict[str, Any]) -> str:
    return str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or "")


def samples(url: str, file: bool = False) -> Iterator[tuple[str, str | None, bytes]]:
    """(key, the image member's suffix or None when the sample has none, its bytes) of each sample of a shard, in
    the order the tar holds them (WebDataset's reader over an fsspec stream); of an image `file`, the one."""
    import fsspec
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    if file:
        with fsspec.open(url, "rb") as stream:
            name = url.rsplit("/", 1)[-1]
            yield name, name.rsplit(".", 1)[-1].lower(), stream.read()
        return

    with fsspec.open(url, "rb") as stream:
        members = ({**member, "__url__": url} for member in tar_file_iterator(stream))
        for sample in group_by_keys(members):
            suffix = next((s for s in IMAGE_MEMBERS if s in sample), None)
            yield str(sample["__key__"]), suffix, sample[suffix] if suffix else b""


def sample_folder(shards: Shards, seed: int, count: int = SAMPLE) -> Path:
    """The images of a seeded sample of the shards, as files in the cache (written once per set of shards): the
    first `count / SAMPLE_SHARDS` images of each of up to `SAMPLE_SHARDS` shards chosen by `seed`."""
    folder = cache_dir() / "shards" / f"{shards.key()}-{seed}-{count}"
    if (folder / "done").is_file():
        return folder
    units = SAMPLE_SHARDS if not shards.files else count  # image files: a seeded sample of them, one image each
    chosen = sorted(random.Random(seed).sample(range(len(shards)), min(units, len(shards))))
    each = -(-count // len(chosen))
    scratch = Path(tempfile.mkdtemp(prefix=folder.name, dir=folder.parent if _made(folder.parent) else None))
    for index in chosen:
        taken = 0
        for key, suffix, data in samples(shards.urls[index], shards.files):
            if suffix is None:
                continue
            name = f"{index:06}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.{suffix}"
            (scratch / name).write_bytes(data)
            taken += 1
            if taken == each:
                break
    (scratch / "done").write_text(json.dumps({"shards": [shards.shown(i) for i in chosen], "each": each}))
    if folder.exists():
        shutil.rmtree(folder)
    scratch.rename(folder)
    return folder


def loader_processes(shards: Shards, processes: int, asked: int) -> int:
    """How many loader processes each training process streams with: `asked`, or fewer so that every one of all
    processes' has a shard of its own (at least 1); one line when there are fewer shards than processes."""
    if len(shards) < processes:
        raise HptError(
            f"data: {len(shards)} shards for {processes} training processes; each process needs a shard of its "
            "own to stream: give more shards, or fewer processes"
        )
    return max(1, min(max(asked, 1), len(shards) // processes))


class ShardStream(IterableDataset):
    """The training images of one training process (`part` of `parts`), streamed by `workers` loader processes
    (see the module's docstring); items are (views, [loader process, epoch, samples of it read])."""

    def __init__(
        self,
        shards: Shards,
        views: Callable[[Any], Any],
        decoding: Decoding,
        seed: int,
        report: Path,
        part: int = 0,
        parts: int = 1,
        workers: int = 1,
        start_step: int = 0,
        positions: dict[int, tuple[int, int]] | None = None,
        buffer: int = BUFFER,
    ) -> None:
        self.shards, self.views, self.decoding, self.seed, self.report = shards, views, decoding, seed, report
        self.part, self.parts, self.workers, self.start_step = part, parts, workers, start_step
        self.positions, self.buffer = positions or {}, buffer

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        info = get_worker_info()
        if (info.num_workers if info else 1) != self.workers:
            raise HptError(f"a shard stream made for {self.workers} loader processes runs in another count")
        # the DataLoader takes batches from its processes in turn, starting with the first: after a resume at step
        # s, the one whose turn step s was must go first
        mine = ((info.id if info else 0) + self.start_step) % self.workers
        stream, streams = self.part * self.workers + mine, self.parts * self.workers
        epoch, skip = self.positions.get(mine, (0, 0))
        scratch = Path(tempfile.mkdtemp(prefix="hpt-shard-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        try:
            while True:
                yielded = False
                for index, (url, key, suffix, data) in enumerate(self._epoch(stream, streams, epoch)):
                    if index < skip:  # read before the resume: passed over without a decode
                        continue
                    views = self._views(url, key, suffix, data, scratch, derived_seed(self.seed, stream, epoch, index))
                    if views is not None:
                        yielded = True
                        yield views, torch.tensor([mine, epoch, index + 1])
                if not yielded and not skip:
                    raise HptError(
                        f"the shards of loader stream {stream} hold no image that decodes; see {self.report}"
                    )
                epoch, skip = epoch + 1, 0
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _epoch(self, stream: int, streams: int, epoch: int) -> Iterator[tuple[str, str, str | None, bytes]]:
        """This stream's samples of `epoch`: its shards (dealt from a seeded permutation), through a seeded buffer."""
        order = torch.randperm(
            len(self.shards), generator=torch.Generator().manual_seed(derived_seed(self.seed, epoch))
        )
        urls = [self.shards.urls[i] for i in order[stream::streams].tolist()]
        read = ((url, *sample) for url in urls for sample in samples(url, self.shards.files))
        return shuffled(read, self.buffer, random.Random(derived_seed(self.seed, stream, epoch, 1)))

    def _views(self, url: str, key: str, suffix: str | None, data: bytes, scratch: Path, seed: int) -> Any | None:
        """The sample's views, or None after listing why it has none."""
        if suffix is None:
            self._note(url, key, f"no image in the sample (none of {', '.join(IMAGE_MEMBERS)})")
            return None
        path = scratch / f"image.{suffix}"
        path.write_bytes(data)
        try:
            pixels = self.decoding(path)
        except Exception as exc:  # noqa: BLE001 - a file from a user may break a decoder in any way
            self._note(url, key, f"cannot be decoded ({type(exc).__name__}: {first_line(exc)})")
            return None
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.views(pixels)

    def _note(self, url: str, key: str, reason: str) -> None:
        line = skipped_line(Path(f"{shown(url)}#{key}"), reason)
        fd = os.open(self.report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line.encode())  # one write of one line: appends from several processes stay whole
        finally:
            os.close(fd)


def shuffled(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """WebDataset's shuffle buffer, drawn from `rng`: each item goes into a buffer of `size`; once it is full,
    a random one comes out for each that goes in; the rest come out in a random order at the end."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        at = rng.randrange(size)
        yield buffer[at]
        buffer[at] = item
    rng.shuffle(buffer)
    yield from buffer


def positions_of(state: torch.Tensor | None, part: int) -> dict[int, tuple[int, int]]:
    """A checkpoint's stream state (processes x loader processes x [epoch, samples read]) for process `part`."""
    if state is None:
        return {}
    return {worker: (int(e), int(n)) for worker, (e, n) in enumerate(state[part].tolist())}


def _expanded(spec: str) -> list[str]:
    from braceexpand import braceexpand

    return list(braceexpand(spec)) if "{" in spec else [spec]


def _folder_of_shards(spec: str) -> bool:
    """A local folder whose files (at its top) include .tar shards and no image: cheap, without a walk."""
    if is_url(spec) or not os.path.isdir(spec):
        return False
    names = [entry.name.lower() for entry in os.scandir(spec) if entry.is_file()]
    from hpt.data.files import IMAGE_SUFFIXES

    return any(n.endswith(SHARD_SUFFIXES) for n in names) and not any(n.endswith(IMAGE_SUFFIXES) for n in names)


def _filesystem(spec: str, what: str) -> tuple[Any, list[str]]:
    """fsspec's file system for `spec` and the names it expands to; one line when the protocol's package is
    missing."""
    import fsspec

    try:
        fs, _, names = fsspec.get_fs_token_paths(_expanded(spec))
    except ImportError as exc:
        scheme = spec.split("://", 1)[0]
        needs = missing_implementation(scheme) or first_line(exc)
        raise HptError(f"{what} '{shown(spec)}': reading {scheme}:// needs {needs}") from None
    return fs, list(names) if names else [spec]


def _url(fs: Any, name: str) -> str:
    """A name as fsspec lists it, made a URL again (local paths stay paths)."""
    protocol = fs.protocol[0] if isinstance(fs.protocol, Sequence) and not isinstance(fs.protocol, str) else fs.protocol
    if protocol in ("file", "local"):
        return name
    return name if "://" in name else f"{protocol}://{name}"


def _made(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError:
        return False


STATE = "data.stream"
"""The checkpoint's tensor of where every loader process of every training process is: processes x loaders x
[epoch, samples of it read]."""


class StreamBatches:
    """A `ShardStream` loader's batches, as (views, labels) like any loader's, keeping where each loader process
    is (its epoch, and the samples of it read) for the checkpoint (`state`), and how many images came."""

    def __init__(self, batches: Iterator[Any], workers: int, positions: dict[int, tuple[int, int]]) -> None:
        self.batches, self.images = batches, 0
        self.state = torch.zeros(workers, 2, dtype=torch.long)
        for worker, (epoch, read) in positions.items():
            self.state[worker] = torch.tensor([epoch, read])

    def __iter__(self) -> StreamBatches:
        return self

    def __next__(self) -> tuple[Any, torch.Tensor]:
        views, where = next(self.batches)
        worker, epoch, read = where[-1].tolist()  # a batch is one loader process's, in the order it read them
        self.state[worker] = torch.tensor([epoch, read])
        self.images += len(where)
        return views, torch.full((len(where),), -1)
