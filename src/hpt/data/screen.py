"""Screening a dataset's files before any work: what cannot be used is skipped, counted and named.

Real folders hold empty files, files cut short by a failed copy, HTML pages saved as `.jpg`, files the job
may not read, and images whose header claims billions of pixels (decompression bombs). Each file is opened
and decoded once, in threads: a bomb is caught from its header alone, before any pixel is decoded; JPEGs
are decoded at reduced scale (PIL's draft mode reads all of the compressed data, so a truncated file still
fails, at a fraction of the cost). What was found is cached in `$HPT_CACHE_DIR/screen` under a key made of
every file's path, size and modification time, so a dataset is screened once, not once per run.

A run goes on without the bad files when they are at most `max_bad_fraction` of the data; above that the
data is probably not what the user meant, and the run stops before it starts, naming the first bad file.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from hpt.config import DataConfig
from hpt.data import dicom
from hpt.data.cache import files_key, read_cached, write_cached
from hpt.data.decode import DICOM_SUFFIX
from hpt.errors import HptError, first_line


@dataclass(frozen=True)
class ScreenPolicy:
    """`data.max_image_pixels` and `data.max_bad_fraction`; the defaults are the config's."""

    max_image_pixels: int = DataConfig.model_fields["max_image_pixels"].default
    max_bad_fraction: float = DataConfig.model_fields["max_bad_fraction"].default

    @classmethod
    def of(cls, data: DataConfig) -> ScreenPolicy:
        return cls(data.max_image_pixels, data.max_bad_fraction)


def problem_with(path: Path, max_image_pixels: int = ScreenPolicy.max_image_pixels) -> str | None:
    """Why `path` cannot be used as an image, or None when it decodes."""
    try:
        if os.stat(path).st_size == 0:
            return "empty file"
        if path.suffix.lower() == DICOM_SUFFIX:
            dicom.read(path, max_image_pixels)
            return None
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_image_pixels:
                return f"{width} x {height} pixels, over the limit of {max_image_pixels} (data.max_image_pixels)"
            if image.format == "JPEG":
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except FileNotFoundError:
        return "does not exist"
    except PermissionError:
        return "permission denied"
    except UnidentifiedImageError:
        return "not an image"
    except dicom.DicomProblem as exc:
        return str(exc)
    except Image.DecompressionBombError as exc:
        return f"decompression bomb ({first_line(exc)})"
    except Exception as exc:  # noqa: BLE001 - a file from a user may break a decoder in any way
        return f"truncated or corrupt ({type(exc).__name__}: {first_line(exc)})"
    return None


def screen(paths: list[Path], what: str, policy: ScreenPolicy) -> dict[Path, str]:
    """The unusable files among `paths`, each with its reason; an error when too many of them are bad."""
    key = files_key(paths, "screen", policy.max_image_pixels)
    cached = read_cached("screen", key)
    if cached is not None:
        bad = {Path(p): reason for p, reason in cached.items()}
    else:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            problems = pool.map(lambda p: problem_with(p, policy.max_image_pixels), paths, chunksize=64)
            bad = {path: reason for path, reason in zip(paths, problems, strict=True) if reason is not None}
        write_cached("screen", key, {str(p): reason for p, reason in bad.items()})
    if len(bad) > policy.max_bad_fraction * len(paths) or len(bad) == len(paths):
        first, reason = next(iter(bad.items()))
        raise HptError(
            f"{what}: {len(bad)} of {len(paths)} files cannot be used, more than data.max_bad_fraction "
            f"({policy.max_bad_fraction:.0%}) allows; the first: '{first}': {reason}"
        )
    return bad


def skipped_report(bad: dict[Path, str]) -> str:
    """`skipped.txt`: one `PATH<TAB>REASON` line per skipped file."""
    return "".join(f"{path}\t{reason}\n" for path, reason in bad.items())
