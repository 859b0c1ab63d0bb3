"""Multi-band images: more than RGB per pixel (aerial RGB + near-infrared, WorldView's 8 bands, multiplexed
microscopy).

Read from TIFF (through `tifffile`) and from NumPy `.npy` arrays (`allow_pickle=False`: a file of objects is
refused, never unpickled), as H x W x C (a 2-D array is one band). A TIFF is multi-band when it has 2 or more
than 3 samples per pixel, unless its 4th sample is marked as alpha (then it is an RGBA image, read as RGB like
any other), or when its pages are an ImageJ/OME channel axis (`C`); a `.npy` array always is.

The TIFF's layout comes from its header, never from the array's shape: pixel-interleaved samples (GDAL's
`INTERLEAVE=PIXEL`, PlanarConfiguration 1, axes `YXS`) and band-sequential planes (`INTERLEAVE=BAND`,
PlanarConfiguration 2, axes `SYX`, as WorldView products ship), stripped or tiled, both read as H x W x C.
GDAL's no-data value (the `GDAL_NODATA` tag, 42113) marks pixels that hold no measurement: they are read as
NaN, the missing-value path of `intensity.py` (left out of the window, then `data.nan_fill`); tifffile's own
attempt to parse that tag for integer data logs a warning per file, which is kept off the console.

`data.channels` is the bands every image of a dataset must have: `auto` takes the count of most of its files;
files with another count are skipped and named. `data.bands` (1-based, as GDAL and rasterio number bands) takes
those bands, in that order, from every file instead (`Decoding.bands`).

Bands become a C x H x W uint8 tensor through the dataset's intensity window (`intensity.py`), the same window
for every band. Colour jitter and grayscale are RGB operations: a multi-band view gets brightness and contrast
jitter per band instead (`views.py`).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpt.data.intensity import Window, type_high
from hpt.data.paths import PathList
from hpt.errors import HptError
from hpt.extras import installed

ARRAY_SUFFIXES = (".npy",)
TIFF_SUFFIXES = (".tif", ".tiff")
ALPHA = (1, 2)  # TIFF ExtraSamples: associated, unassociated alpha
GDAL_NODATA = 42113
"""The TIFF tag GDAL writes a raster's no-data value in, as ASCII ('-9999', 'nan')."""


GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I", "F")
"""PIL's modes of one sample a pixel: read by PIL, through the intensity window where they are more than 8 bits."""


class NeedsTifffile(RuntimeError):
    """A TIFF that only tifffile reads as hpt must (more or other than 8-bit RGB/grey, or bands as pages), where
    tifffile (the `bands` extra) is not installed: screening names it with the command that installs it."""

    def __init__(self) -> None:
        super().__init__(
            "a TIFF of more than RGB, high-bit RGB or bands as pages, read through tifffile: pip install 'hpt[bands]'"
        )


def _tifffile() -> Any:
    """The tifffile module (the `bands` extra), or `NeedsTifffile`."""
    try:
        import tifffile
    except ImportError:
        raise NeedsTifffile() from None
    return tifffile


class NotOneImage(ValueError):
    """A TIFF whose first series is a stack of pages (time, depth, an unnamed axis), not one image of bands."""


class _NoNodataNoise(logging.Filter):
    """tifffile logs a warning for every file whose GDAL_NODATA its own parser cannot cast to the sample type
    ('nan' in an integer file); hpt reads that tag itself (`_nodata`), so the warning says nothing to a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "GDAL_NODATA" not in record.getMessage()


logging.getLogger("tifffile").addFilter(_NoNodataNoise())


@dataclass(frozen=True)
class Raster:
    """A multi-band file's pixels."""

    values: np.ndarray
    """H x W x C: as stored, or as floats with NaN where the file marks no-data."""
    stored: np.dtype
    """The file's sample type: what decides whether the window applies (8-bit bands are used as they are) and
    the top of `full-range`."""


def band_count(path: Path) -> int:
    """Bands per pixel from the file's header: 3 for every ordinary image (grey and RGBA are read as RGB)."""
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        shape = _array_shape(path)
        return 1 if len(shape) == 2 else shape[2]
    if suffix in TIFF_SUFFIXES:
        if not installed("bands"):
            return _count_without_tifffile(path)
        with _tifffile().TiffFile(path) as tiff:
            page = tiff.pages.first
            samples, extra = int(page.samplesperpixel), tuple(int(e) for e in getattr(page, "extrasamples", ()) or ())
            if (channels := _channel_pages(tiff)) is not None:
                return channels
        if samples == 2 or samples > 4 or (samples == 4 and not (extra and extra[0] in ALPHA)):
            return samples
    return 3


def header_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(H x W x C shape, dtype) of what `read_raster` would return, from the file's header alone: nothing is
    decoded, so a file claiming billions of values costs nothing to refuse. For a TIFF, its first series (every
    page of it), in the order its header gives: a layout it cannot read as H x W x C is an error naming it."""
    if path.suffix.lower() in ARRAY_SUFFIXES:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
        return tuple(shape), dtype
    with _tifffile().TiffFile(path) as tiff:
        series = tiff.series[0]
        shape = tuple(int(n) for n in series.shape)
        order = _to_height_width_bands(series.axes, shape)
        return tuple(shape[i] for i in order), np.dtype(series.dtype)


def _count_without_tifffile(path: Path) -> int:
    """3 for a TIFF that hpt reads through PIL with tifffile installed too (one page of grey at any depth, or of
    8-bit palette, RGB or RGBA samples); `NeedsTifffile` for any other (high-bit RGB, more samples, bands as
    pages), rather than a file read wrong or called damaged."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            bits = image.tag_v2.get(258, (8,)) if image.format == "TIFF" else (8,)  # type: ignore[attr-defined]
            one_page = getattr(image, "n_frames", 1) == 1
            if one_page and (image.mode in GREY_MODES or (image.mode in ("P", "RGB", "RGBA") and max(bits) <= 8)):
                return 3
    except OSError:  # PIL cannot read it (more than 4 samples, band-sequential planes of 16 bits, ...)
        pass
    raise NeedsTifffile()


def channel_pages(path: Path) -> bool:
    """A TIFF whose bands are its pages (an ImageJ/OME channel axis), which PIL would read as its first page."""
    with _tifffile().TiffFile(path) as tiff:
        return _channel_pages(tiff) is not None


def _channel_pages(tiff: object) -> int | None:
    """The channel count of a TIFF whose pages are an ImageJ/OME channel axis (`C`), else None."""
    if int(tiff.pages.first.samplesperpixel) != 1 or len(tiff.pages) < 2:  # type: ignore[attr-defined]
        return None
    series = tiff.series[0]  # type: ignore[attr-defined]
    return int(series.shape[series.axes.index("C")]) if "C" in series.axes else None


def is_multiband(path: Path) -> bool:
    return path.suffix.lower() in ARRAY_SUFFIXES or band_count(path) != 3


def read_raster(path: Path) -> Raster:
    """H x W x C values as stored, no-data as NaN (see the module's docstring)."""
    nodata = None
    if path.suffix.lower() in ARRAY_SUFFIXES:
        values = np.load(path, allow_pickle=False)
    else:
        with _tifffile().TiffFile(path) as tiff:
            series = tiff.series[0]
            nodata = _nodata(tiff.pages.first)
            values = series.asarray()
            values = values.transpose(_to_height_width_bands(series.axes, values.shape))
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3:
        raise ValueError(f"expected an H x W or H x W x C array, got shape {values.shape}")
    stored = values.dtype
    if nodata is not None and values.dtype.kind in "uif":
        missing = np.isnan(values) if math.isnan(nodata) else values == nodata
        if missing.any():
            values = values.astype(np.float32 if values.dtype.itemsize <= 2 else np.float64)  # exact for 16 bits
            values[missing] = np.nan
    return Raster(values, stored)


def read_bands(path: Path) -> np.ndarray:
    """H x W x C values as stored, no-data as NaN."""
    return read_raster(path).values


def load_bands(path: Path, window: Window, bands: Sequence[int] | None = None) -> torch.Tensor:
    """C x H x W uint8: 8-bit bands as they are (no-data as the window's fill, else 0), higher-bit and float
    bands through `window`. `bands`: 1-based band numbers to take, in order (`data.bands`); None: all."""
    raster = read_raster(path)
    values = raster.values
    if bands is not None:
        values = values[..., [b - 1 for b in bands]]
    if raster.stored == np.uint8:
        if values.dtype != np.uint8:  # no-data marked in an 8-bit file
            values = np.nan_to_num(values, nan=0 if window.fill is None else window.fill).clip(0, 255)
            values = values.astype(np.uint8)
    else:
        values = window.to_uint8(values, 1.0 if raster.stored.kind == "f" else type_high("I"))
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))


def multiband_values(path: Path) -> np.ndarray | None:
    """What a dataset window is measured on: the values of a high-bit multi-band file (no-data as NaN), else None."""
    try:
        raster = read_raster(path)
    except Exception:  # noqa: BLE001 - a user's file may break a reader in any way; screening reports it
        return None
    return None if raster.stored == np.uint8 else raster.values


def dataset_channels(
    paths: Sequence[Path], setting: int | str, what: str, bands: Sequence[int] | None = None
) -> tuple[int, dict[Path, str]]:
    """(the bands the model sees, the files that cannot give them and why). `auto`: the count most files have.
    With `bands` (`data.bands`), that many, and every file needs at least the highest band named. Only TIFFs and
    arrays are opened (their headers): every other image is 3 bands, counted without a look."""
    counts = Counter({3: len(paths)})
    differ: dict[Path, int | None] = {}  # the files that may hold another count, with theirs
    for name in paths.names() if isinstance(paths, PathList) else map(os.fspath, paths):
        if name.lower().endswith(ARRAY_SUFFIXES + TIFF_SUFFIXES):
            count = differ[Path(name)] = _count_or_none(Path(name))
            counts[3] -= 1
            if count is not None:
                counts[count] += 1
    first = differ.get(paths[0], 3) if len(paths) else 3
    if bands:
        needed = max(bands)
        other = {p: f"{_bands(c)}; data.bands takes band {needed}" for p, c in differ.items() if c and c < needed}
        if len(other) == len(paths) or (needed > 3 and not differ):
            raise HptError(f"{what}: no file has band {needed} (data.bands); the first has {_bands(first)}")
        other |= _all_three(paths, differ, f"3 bands; data.bands takes band {needed}") if needed > 3 else {}
        return len(bands), other
    if setting == "auto":
        common = (+counts).most_common(1)
        channels = common[0][0] if common else 3
    else:
        channels = int(setting)
    other = {
        p: f"{_bands(c)}; the dataset has {channels} (data.channels)" for p, c in differ.items() if c and c != channels
    }
    if channels != 3:
        other |= _all_three(paths, differ, f"3 bands; the dataset has {channels} (data.channels)")
    if len(other) == len(paths):
        raise HptError(f"{what}: no file has {channels} bands (data.channels); the first has {first}")
    return channels, other


def _all_three(paths: Sequence[Path], differ: dict[Path, int | None], reason: str) -> dict[Path, str]:
    """Every file that is 3 bands without a look (not a TIFF or an array), each with `reason`."""
    names = paths.names() if isinstance(paths, PathList) else map(os.fspath, paths)
    return {Path(name): reason for name in names if Path(name) not in differ}


def _bands(count: int | None) -> str:
    return f"{count} band{'s' if count != 1 else ''}"


def _count_or_none(path: Path) -> int | None:
    try:
        return band_count(path)
    except Exception:  # noqa: BLE001 - unreadable files are screening's to name
        return None


def _array_shape(path: Path) -> tuple[int, ...]:
    shape, _ = header_shape(path)  # the header only: no data is read
    if len(shape) not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C array, got shape {shape}")
    return tuple(shape)


def _to_height_width_bands(axes: str, shape: Sequence[int]) -> tuple[int, ...]:
    """The permutation that takes a TIFF series in its header's axes (tifffile's letters: Y, X, S samples, C
    channels) to H x W (x C). Any other axis (pages of a stack: I, Q, Z, T) is not one image of bands."""
    extra = [axis for axis in axes if axis not in "YX"]
    if "Y" not in axes or "X" not in axes or len(extra) > 1 or (extra and extra[0] not in "SC"):
        raise NotOneImage(
            f"a TIFF series of shape {tuple(shape)} (axes {axes}): expected one image of bands (Y X and samples or "
            "channels), not a stack of pages"
        )
    return tuple(axes.index(axis) for axis in "YX" + "".join(extra))


def _nodata(page: object) -> float | None:
    """The GDAL_NODATA tag's value, or None: absent, or not a number."""
    value = page.tags.valueof(GDAL_NODATA)  # type: ignore[attr-defined]
    if value is None:
        return None
    try:
        return float(str(value).strip().replace(",", "."))  # 'nan', '-9999', '1e+20'; comma decimal separators
    except ValueError:
        return None
