"""Writing files so that no reader ever sees half of one, and the checks made before writing.

Every file hpt writes goes to `NAME.PID.tmp`, is flushed to disk, then renamed over `NAME`: a crash, a full disk
or a pulled plug leaves either the old file or the new one, never half of one. Used by every layer (the config,
checkpoints, runs, evaluations, exports), so it lives at the bottom.
"""

from __future__ import annotations

import fcntl
import glob
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hpt.errors import HptError

TMP_SUFFIX = ".tmp"


def make_folder(path: Path, what: str = "--out") -> Path:
    """Create `path` (and its parents) for writing into, or one line naming it and why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HptError(f"{what} '{path}' cannot be created ({exc.strerror or exc})") from None
    return path


def check_writable_file(out: Path, what: str = "--out") -> None:
    """Before any work: `out` names a file (not a folder) in a folder that exists and takes a new file (tried:
    permissions alone do not say so, e.g. on /proc or a read-only mount)."""
    if out.is_dir():
        raise HptError(f"{what} '{out}' is a folder; name the file to write")
    if not out.parent.is_dir():
        raise HptError(f"{what} '{out}': its folder '{out.parent}' does not exist")
    probe = temporary_path(out)
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise HptError(f"could not write '{out}' ({exc.strerror or exc}); nothing was written") from None


def check_writable_folder(out: Path, what: str = "--out") -> Path:
    """Before any work: `out` is a folder (made if missing) that takes a new file (tried)."""
    if out.exists() and not out.is_dir():
        raise HptError(f"{what} '{out}' is a file; name a folder to write into")
    make_folder(out, what)
    check_writable_file(out / "probe", what)
    return out


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock of `folder` (`flock` of the folder itself: no file is left behind) while a file in it
    is read, changed and written back, so that two processes doing so at once do not lose each other's change.
    A folder that cannot be locked (a file system without locks) is one line naming it: callers take the lock once
    before their work, so that nothing computed is lost to it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise HptError(f"'{folder}' cannot be opened to lock it ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise HptError(f"'{folder}' cannot be locked ({exc.strerror or exc}): two writers could lose each "
                           "other's entries; write to a local disk") from None  # fmt: skip
        yield
    finally:
        os.close(fd)  # releases the lock


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


STALE_AFTER_S = 60.0
"""A leftover `NAME.PID.tmp` is removed once its process is gone and it has not changed for this long: a
process of another machine writing to a shared file system has a PID this one cannot see, and writes more
often than this while it writes."""


def temporary_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: beside it (the rename stays on one file
    system), named by process so that processes writing the same file at once do not write into each other's,
    and ending in `TMP_SUFFIX` so that a killed attempt's leftovers are found: those of `path` are removed here
    (`remove_stale_temporaries`), by the next command that writes it."""
    remove_stale_temporaries(path.parent, path.name)
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


def remove_stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the `NAME.PID.tmp` files in `folder` (of `name` only, where given) left by writers that were
    killed: their process no longer runs and they are older than `STALE_AFTER_S`. Anything else, a user's
    `notes.tmp` included, stays. Returns what was removed."""
    removed: list[Path] = []
    try:
        candidates = list(folder.glob(f"{glob.escape(name)}.*{TMP_SUFFIX}" if name else f"*.*{TMP_SUFFIX}"))
    except OSError:
        return removed
    for leftover in candidates:
        pid = leftover.name[: -len(TMP_SUFFIX)].rsplit(".", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or _running(int(pid)):
            continue
        try:
            if time.time() - leftover.stat().st_mtime > STALE_AFTER_S and leftover.is_file():
                leftover.unlink()
                removed.append(leftover)
        except OSError:
            continue  # gone already, or not ours to remove: left
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a PID: not ours to judge
    return True


def write_bytes_atomic(path: Path, *chunks: bytes | memoryview) -> None:
    """Replace `path` by its `chunks`, one after the other, all at once; on any write error (a full disk, a lost
    mount, no permission) the temporary file is removed, `path` is left as it was, and the error names both.
    The temporary file is named by process, so that processes writing the same file at once (a shared cache
    under `torchrun`) do not write into each other's."""
    write_chunks_atomic(path, chunks)


def write_chunks_atomic(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    """`write_bytes_atomic` of chunks made as they are written (a generator): a large file is never whole in
    memory."""
    tmp = temporary_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        kept = "the previous file there is intact" if path.exists() else "nothing was written"
        raise HptError(f"could not write '{path}' ({exc.strerror or exc}); {kept}") from None
