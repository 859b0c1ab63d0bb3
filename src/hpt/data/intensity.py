"""How high-bit pixel values become the 8 bits every view works in: one intensity window for a whole dataset.

X-ray, CT and microscopy images come as 12- or 16-bit greyscale PNG or TIFF, as floats, or as DICOM; their values
fill only part of their type's range (a 12-bit scan: 0-4095 of 0-65535). Mapping the type's whole range to 0-255
would leave such a scan about 16 grey levels. hpt maps a window of values, [low, high], to 0-255 instead, the
same window for every image of the dataset so that relative brightness is kept (`data.intensity`):

- `auto` (the default): the 0.5th and 99.5th percentiles of the values of a fixed sample of the dataset's
  high-bit images (`WINDOW_SAMPLE` at most), computed once and cached like the pixel statistics. A dataset of
  8-bit images gets `full-range`, which leaves them as they are;
- `full-range`: the type's range (0-65535 for 16- and 32-bit integers, 0-1 for floats);
- `per-image`: each image's own minimum and maximum (microscopy, where exposure differs from image to image);
- `[low, high]`: a window given in the images' own values (for DICOM: after the modality LUT, e.g. Hounsfield
  units).

Values outside the window are clipped. A window at least 256 values wide loses no precision below 8 bits (a
12-bit scan keeps all 256 output levels). DICOM files that carry their own VOI window use it (`dicom.py`).
The window chosen is logged, recorded in the run's provenance and its export, and applied by `hpt eval` (the
model's own window), the run's monitor and `hpt select`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from hpt.data.cache import files_key, read_cached, write_cached

if TYPE_CHECKING:  # files.py screens through decode.py, which needs this module
    from hpt.data.files import ImageList

WINDOW_SAMPLE = 500
"""Images the `auto` window is measured on: percentiles of so many images are stable to a fraction of a level."""
PIXELS_PER_IMAGE = 65536
"""Values taken from each sampled image (evenly strided), so a few large scans do not dominate."""
PERCENTILES = (0.5, 99.5)
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
"""PIL modes with more than 8 bits per value (16-bit PNG/TIFF open as I;16 or I, float TIFF as F)."""

Setting = Literal["auto", "full-range", "per-image"] | tuple[float, float]


@dataclass(frozen=True)
class Window:
    mode: Literal["fixed", "full-range", "per-image"]
    low: float = 0.0
    high: float = 0.0
    source: str = ""
    """How it was chosen, for the log and the provenance."""

    def to_uint8(self, values: np.ndarray, type_high: float) -> np.ndarray:
        """`values` (any shape) -> uint8: [low, high] onto 0-255, rounded, clipped. `type_high`: the top of
        the values' type, used by `full-range`."""
        values = values.astype(np.float64)
        if self.mode == "per-image":
            low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        elif self.mode == "full-range":
            low, high = 0.0, type_high
        else:
            low, high = self.low, self.high
        if high <= low:  # a constant image (per-image) has nothing to stretch: black
            return np.zeros(values.shape, dtype=np.uint8)
        return np.clip(np.floor((values - low) * (255.0 / (high - low)) + 0.5), 0, 255).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Window:
        return cls(
            record["mode"], float(record.get("low", 0.0)), float(record.get("high", 0.0)), str(record.get("source", ""))
        )

    def describe(self) -> str:
        if self.mode == "fixed":
            return f"intensity window [{self.low:g}, {self.high:g}] ({self.source})"
        return f"intensity {self.mode} ({self.source})" if self.source else f"intensity {self.mode}"


FULL_RANGE = Window("full-range")


def type_high(mode: str) -> float:
    return 1.0 if mode == "F" else 65535.0


def resolve_window(images: ImageList, setting: Setting, seed: int = 0) -> Window:
    """The window `setting` means for `images` (see the module's docstring)."""
    if isinstance(setting, tuple | list):
        low, high = (float(v) for v in setting)
        return Window("fixed", low, high, "data.intensity")
    if setting == "full-range":
        return Window("full-range", source="data.intensity")
    if setting == "per-image":
        return Window("per-image", source="data.intensity")
    paths = sorted(images.paths)
    if len(paths) > WINDOW_SAMPLE:
        paths = sorted(random.Random(seed).sample(paths, WINDOW_SAMPLE))
    key = files_key(paths, "window", *PERCENTILES, PIXELS_PER_IMAGE)
    cached = read_cached("window", key)
    if cached is not None:
        return Window.from_dict(cached)
    window = _measure(paths)
    write_cached("window", key, window.to_dict())
    return window


def _measure(paths: list[Any]) -> Window:
    from hpt.data.decode import high_bit_values  # decode.py imports this module

    samples = []
    for path in paths:
        values = high_bit_values(path)
        if values is not None and values.size:
            flat = values.reshape(-1)
            samples.append(flat[:: max(1, flat.size // PIXELS_PER_IMAGE)].astype(np.float64))
    if not samples:
        return Window("full-range", source=f"auto: no high-bit images among {len(paths)} sampled")
    pooled = np.concatenate(samples)
    low, high = (float(v) for v in np.percentile(pooled, PERCENTILES))
    if high <= low:  # e.g. binary masks: the percentiles meet
        low, high = float(pooled.min()), float(pooled.max())
    if high <= low:
        return Window("full-range", source=f"auto: every sampled value is {low:g}")
    return Window(
        "fixed", low, high, f"auto: {PERCENTILES[0]}-{PERCENTILES[1]}th percentiles of {len(samples)} high-bit images"
    )


def is_high_bit(image: Image.Image) -> bool:
    return image.mode in HIGH_BIT_MODES
