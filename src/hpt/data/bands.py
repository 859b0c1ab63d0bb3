"""Multi-band images: more than RGB per pixel (aerial RGB + near-infrared, multiplexed microscopy).

Read from TIFF (through `tifffile`) and from NumPy `.npy` arrays (`allow_pickle=False`: a file of objects is
refused, never unpickled), as H x W x C (a 2-D array is one band). A TIFF is multi-band when it has 2 or more
than 3 samples per pixel, unless its 4th sample is marked as alpha (then it is an RGBA image, read as RGB like
any other); a `.npy` array always is. `data.channels` is the bands every image of a dataset must have: `auto`
takes the count of most of its files; files with another count are skipped and named.

Bands become a C x H x W uint8 tensor through the dataset's intensity window (`intensity.py`), the same window
for every band. Colour jitter and grayscale are RGB operations: a multi-band view gets brightness and contrast
jitter per band instead (`views.py`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from hpt.data.intensity import Window, type_high
from hpt.errors import HptError

ARRAY_SUFFIXES = (".npy",)
TIFF_SUFFIXES = (".tif", ".tiff")
ALPHA = (1, 2)  # TIFF ExtraSamples: associated, unassociated alpha


def band_count(path: Path) -> int:
    """Bands per pixel from the file's header: 3 for every ordinary image (grey and RGBA are read as RGB)."""
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        shape = _array_shape(path)
        return 1 if len(shape) == 2 else shape[2]
    if suffix in TIFF_SUFFIXES:
        try:
            import tifffile
        except ImportError:
            return 3  # PIL reads it (as RGB) or screening names it
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            samples, extra = int(page.samplesperpixel), tuple(int(e) for e in getattr(page, "extrasamples", ()) or ())
        if samples == 2 or samples > 4 or (samples == 4 and not (extra and extra[0] in ALPHA)):
            return samples
    return 3


def header_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of what `read_bands` would return, from the file's header alone: nothing is decoded, so
    a file claiming billions of values costs nothing to refuse. For a TIFF, its first series (every page of it)."""
    if path.suffix.lower() in ARRAY_SUFFIXES:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
        return tuple(shape), dtype
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        return tuple(int(n) for n in series.shape), np.dtype(series.dtype)


def is_multiband(path: Path) -> bool:
    return path.suffix.lower() in ARRAY_SUFFIXES or band_count(path) != 3


def read_bands(path: Path) -> np.ndarray:
    """H x W x C values as stored."""
    if path.suffix.lower() in ARRAY_SUFFIXES:
        values = np.load(path, allow_pickle=False)
    else:
        import tifffile

        values = tifffile.imread(path)
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3:
        raise ValueError(f"expected an H x W or H x W x C array, got shape {values.shape}")
    return values


def load_bands(path: Path, window: Window) -> torch.Tensor:
    """C x H x W uint8: 8-bit bands as they are, higher-bit and float bands through `window`."""
    values = read_bands(path)
    if values.dtype != np.uint8:
        high = 1.0 if values.dtype.kind == "f" else type_high("I")
        values = window.to_uint8(values, high)
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))


def multiband_values(path: Path) -> np.ndarray | None:
    """What a dataset window is measured on: the values of a high-bit multi-band file, else None."""
    try:
        values = read_bands(path)
    except Exception:  # noqa: BLE001 - a user's file may break a reader in any way; screening reports it
        return None
    return None if values.dtype == np.uint8 else values


def dataset_channels(paths: list[Path], setting: int | str, what: str) -> tuple[int, dict[Path, str]]:
    """(the dataset's band count, the files with another count and why). `auto`: the count most files have."""
    counts = {path: _count_or_none(path) for path in paths}
    if setting == "auto":
        common = Counter(c for c in counts.values() if c is not None).most_common(1)
        channels = common[0][0] if common else 3
    else:
        channels = int(setting)
    other = {
        path: f"{count} band{'s' if count != 1 else ''}; the dataset has {channels} (data.channels)"
        for path, count in counts.items()
        if count is not None and count != channels
    }
    if len(other) == len(paths):
        raise HptError(f"{what}: no file has {channels} bands (data.channels); the first has {counts[paths[0]]}")
    return channels, other


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
