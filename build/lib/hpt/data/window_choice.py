"""Choosing a dataset's intensity window (`data.intensity`, `intensity.py` says what each setting means): given,
or measured once on a sample of the dataset's high-bit values and cached like the pixel statistics.

DICOM files of several modalities that use the dataset window (greyscale, no VOI of their own: CT in Hounsfield
units beside MR in its scanner's units) get an `auto` window for each modality, each measured on a sample of its
own files (`Window.by_modality`); a window given in values (`[low, high]`) is one modality's units, so it is
refused for such a mix unless `data.mixed_modalities` is `allow`. Each DICOM file's modality is read from its
header (`modalities`), once, and cached.

Apart from `intensity.py` because measuring decodes files (`decode.py`), and decoding applies windows.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from hpt.data.cache import files_key, read_cached, write_cached
from hpt.data.decode import high_bit_values
from hpt.data.files import ImageList, frames_of
from hpt.data.intensity import Setting, Window
from hpt.data.screen import dicom_headers
from hpt.errors import HptError

WINDOW_SAMPLE = 500
"""Images the `auto` window is measured on: percentiles of so many images are stable to a fraction of a level."""
PIXELS_PER_IMAGE = 65536
"""Values taken from each sampled image (evenly strided), so a few large scans do not dominate."""
PERCENTILES = (0.5, 99.5)


def resolve_window(
    images: ImageList,
    setting: Setting,
    seed: int = 0,
    fill: float | None = None,
    bands: Sequence[int] | None = None,
    mixed_modalities: str = "refuse",
) -> Window:
    """The window `setting` means for `images` (see the module's docstring); `fill`: `data.nan_fill`; `bands`:
    `data.bands`, the bands of multi-band files it is measured on (None: all); `mixed_modalities`:
    `data.mixed_modalities`."""
    if fill is not None and not math.isfinite(fill):
        raise HptError(f"data.nan_fill: expected a finite number, got {fill}")
    if setting == "full-range":
        return Window("full-range", source="data.intensity", fill=fill)
    if setting == "per-image":
        return Window("per-image", source="data.intensity", fill=fill)
    found = modalities(images)
    windowed = windowed_modalities(found)
    if isinstance(setting, tuple | list):
        low, high = (float(v) for v in setting)
        if len(windowed) > 1 and mixed_modalities != "allow":
            raise HptError(
                f"data.intensity [{low:g}, {high:g}] is one window in one modality's values, but the DICOM files "
                f"that use it come from {len(windowed)} modalities ({describe_counts(windowed)}): set "
                "data.intensity auto (a window measured for each modality), keep one modality, or set "
                "data.mixed_modalities allow"
            )
        return Window("fixed", low, high, "data.intensity", fill)
    window = _measured(images, seed, bands)
    if len(windowed) > 1:
        facts = {os.fspath(path): fact for path, fact in found.items()}
        names = list(images.paths.names())
        each = [
            (
                name,
                _measured(images.subset([i for i, p in enumerate(names) if facts.get(p) == (name, True)]), seed, bands),
            )
            for name in sorted(windowed)
        ]
        window = replace(window, by_modality=tuple(each))
    return replace(window, fill=fill)


def _measured(images: ImageList, seed: int, bands: Sequence[int] | None) -> Window:
    """The `auto` window of a seeded sample of `images`, measured once and cached."""
    items = images.sample(WINDOW_SAMPLE, seed)
    settings = (*PERCENTILES, PIXELS_PER_IMAGE, "finite values only", *(bands or ()), *frames_of(items))
    key = files_key([path for path, _ in items], "window", *settings)
    cached = read_cached("window", key)
    window = Window.from_dict(cached) if cached is not None else measure_window(items, bands)
    if cached is None:
        write_cached("window", key, window.to_dict())
    return window


def modalities(images: ImageList) -> dict[Path, tuple[str, bool]]:
    """Each usable DICOM file of `images`: its modality and whether it uses the dataset window (its header)."""
    found = dicom_headers(images.paths, images.stats)
    return {path: (header.modality, header.uses_dataset_window) for path, header in found.items()}


def windowed_modalities(found: dict[Path, tuple[str, bool]]) -> Counter[str]:
    """Files that use the dataset window, counted by modality ('' for files that name none)."""
    return Counter(modality for modality, uses in found.values() if uses)


def describe_counts(counts: Counter[str]) -> str:
    """'40 CT, 20 MR, 2 without a modality'."""
    return ", ".join(f"{n} {name}" if name else f"{n} without a modality" for name, n in counts.most_common())


def _values(item: tuple[Path, int | None], bands: Sequence[int] | None) -> tuple[np.ndarray, int] | None:
    """(every PIXELS_PER_IMAGE-th finite high-bit value of an image, as float64; its non-finite count), or None."""
    values = high_bit_values(*item)
    if values is None or not values.size:
        return None
    if bands and values.ndim == 3 and values.shape[-1] >= max(bands):
        values = values[..., [b - 1 for b in bands]]
    flat, missing = values.reshape(-1), 0
    if flat.dtype.kind == "f" and not (finite := np.isfinite(flat)).all():
        missing = int(flat.size - finite.sum())
        flat = flat[finite]
    return flat[:: max(1, flat.size // PIXELS_PER_IMAGE)].astype(np.float64), missing


def measure_window(items: list[tuple[Path, int | None]], bands: Sequence[int] | None = None) -> Window:
    """The `auto` window of `items` (file, frame): percentiles of their finite values (no-data, NaN and inf left
    out and counted); of multi-band files, of `bands` only."""
    samples, non_finite = [], {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # decoders release the interpreter lock
        taken = list(pool.map(lambda item: _values(item, bands), items))  # a strided sample each: bounded memory
    for (path, _), found in zip(items, taken):
        if found is not None:
            samples.append(found[0])
            if found[1]:
                non_finite[path] = found[1]
    if not samples:
        return Window("full-range", source=f"auto: no high-bit images among {len(items)} sampled")
    pooled = np.concatenate(samples)
    if not pooled.size:
        raise HptError(
            f"data: every value of the {len(samples)} sampled high-bit images is NaN or infinite (e.g. "
            f"'{next(iter(non_finite))}'): no intensity window can be measured"
        )
    low, high = (float(v) for v in np.percentile(pooled, PERCENTILES))
    if high <= low:  # e.g. binary masks: the percentiles meet
        low, high = float(pooled.min()), float(pooled.max())
    if not (math.isfinite(low) and math.isfinite(high)):  # float64 overflow of extreme float values
        raise HptError(f"data: the intensity window measured is [{low:g}, {high:g}], not finite; set data.intensity")
    ignored = (
        f"; {sum(non_finite.values())} no-data/NaN/inf values in {len(non_finite)} files left out (e.g. "
        f"'{next(iter(non_finite))}')"
        if non_finite
        else ""
    )
    if high <= low:
        return Window("full-range", source=f"auto: every sampled value is {low:g}{ignored}")
    return Window(
        "fixed",
        low,
        high,
        f"auto: {PERCENTILES[0]}-{PERCENTILES[1]}th percentiles of {len(samples)} high-bit images{ignored}",
    )
