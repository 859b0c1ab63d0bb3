"""What hpt learns about a dataset once and keeps: small JSON files in `$HPT_CACHE_DIR` (default
`~/.cache/hpt`), one folder per kind (`stats`, `window`), named by a key over the files' paths, sizes and
modification times, so that a changed file means a new key and nothing stale is ever read. (Screening keeps
its results per file, in `screen.sqlite` beside them: `screen.py`.)"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    return Path(os.environ.get("HPT_CACHE_DIR", Path.home() / ".cache" / "hpt")).expanduser()


def files_key(paths: list[Path], *settings: Any) -> str:
    """A key over `settings` and each file's resolved path, size, modification time and mode."""
    digest = hashlib.sha256(f"v1 {' '.join(map(str, settings))}\n".encode())
    for path in paths:
        try:
            st = os.stat(path)
            digest.update(f"{path.resolve()} {st.st_size} {st.st_mtime_ns} {st.st_mode}\n".encode())
        except OSError:
            digest.update(f"{path} missing\n".encode())
    return digest.hexdigest()[:32]


def read_cached(kind: str, key: str) -> Any | None:
    path = cache_dir() / kind / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_cached(kind: str, key: str, value: Any) -> None:
    try:
        folder = cache_dir() / kind
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{key}.json").write_text(json.dumps(value))
    except OSError:
        pass  # an unwritable cache costs a recomputation next time, nothing more
