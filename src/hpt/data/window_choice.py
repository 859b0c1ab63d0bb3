"""Choosing a dataset's intensity window (`data.intensity`, `intensity.py` says what each setting means): given,
or measured once on a sample of the dataset's high-bit values and cached like the pixel statistics.

Apart from `intensity.py` because measuring decodes files (`decode.py`), and decoding applies windows.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

import numpy as np

from hpt.data.cache import files_key, read_cached, write_cached
from hpt.data.decode import high_bit_values
from hpt.data.files import ImageList
from hpt.data.intensity import Setting, Window
from hpt.errors import HptError

WINDOW_SAMPLE = 500
"""Images the `auto` window is measured on: percentiles of so many images are stable to a fraction of a level."""
PIXELS_PER_IMAGE = 65536
"""Values taken from each sampled image (evenly strided), so a few large scans do not dominate."""
PERCENTILES = (0.5, 99.5)


def resolve_window(images: ImageList, setting: Setting, seed: int = 0, fill: float | None = None) -> Window:
    """The window `setting` means for `images` (see the module's docstring); `fill`: `data.nan_fill`."""
    if fill is not None and not math.isfinite(fill):
        raise HptError(f"data.nan_fill: expected a finite number, got {fill}")
    if isinstance(setting, tuple | list):
        low, high = (float(v) for v in setting)
        return Window("fixed", low, high, "data.intensity", fill)
    if setting == "full-range":
        return Window("full-range", source="data.intensity", fill=fill)
    if setting == "per-image":
        return Window("per-image", source="data.intensity", fill=fill)
    paths = sorted(images.paths)
    if len(paths) > WINDOW_SAMPLE:
        paths = sorted(random.Random(seed).sample(paths, WINDOW_SAMPLE))
    key = files_key(paths, "window", *PERCENTILES, PIXELS_PER_IMAGE, "finite values only")
    cached = read_cached("window", key)
    window = Window.from_dict(cached) if cached is not None else measure_window(paths)
    if cached is None:
        write_cached("window", key, window.to_dict())
    return replace(window, fill=fill)


def measure_window(paths: list[Any]) -> Window:
    """The `auto` window of `paths`: percentiles of their finite values (NaN and inf left out and counted)."""
    samples, non_finite = [], {}
    for path in paths:
        values = high_bit_values(path)
        if values is not None and values.size:
            flat = values.reshape(-1)
            if flat.dtype.kind == "f" and not (finite := np.isfinite(flat)).all():
                non_finite[path] = int(flat.size - finite.sum())
                flat = flat[finite]
            samples.append(flat[:: max(1, flat.size // PIXELS_PER_IMAGE)].astype(np.float64))
    if not samples:
        return Window("full-range", source=f"auto: no high-bit images among {len(paths)} sampled")
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
        f"; {sum(non_finite.values())} NaN/inf values in {len(non_finite)} files left out (e.g. "
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
