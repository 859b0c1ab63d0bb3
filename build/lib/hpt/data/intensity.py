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

Values outside the window are clipped. NaN and infinite values (no-data in remote-sensing and microscopy float
tiles) are left out when the window is measured (the count and the files are said in its `source`), and become
`data.nan_fill` (default: the window's low end) before the window is applied; a window whose ends are not finite
numbers is an error. A window at least 256 values wide loses no precision below 8 bits (a
12-bit scan keeps all 256 output levels). DICOM files that carry their own VOI window use it (`dicom.py`).
The window chosen is logged, recorded in the run's provenance and its export, and applied by `hpt eval` (the
model's own window), the run's monitor and `hpt select`.

This module is what a window is and how it maps values (used by decoding, `decode.py`); choosing one for a
dataset, which decodes a sample, is `window_choice.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from PIL import Image

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
    fill: float | None = None
    """What NaN and infinite values become before the window, in the images' own values (`data.nan_fill`);
    None: the window's low end (black)."""
    by_modality: tuple[tuple[str, Window], ...] = ()
    """DICOM files of several modalities that use the dataset window: each modality's own `auto` window (CT's
    in Hounsfield units, MR's in its scanner's units; `for_modality`); this one serves every other file."""

    def for_modality(self, modality: str) -> Window:
        """The window of a DICOM file of `modality`: its modality's own, else this one."""
        for name, window in self.by_modality:
            if name == modality:
                return replace(window, fill=self.fill)
        return self

    def to_uint8(self, values: np.ndarray, type_high: float) -> np.ndarray:
        """`values` (any shape) -> uint8: [low, high] onto 0-255, rounded, clipped. `type_high`: the top of
        the values' type, used by `full-range`. Non-finite values become `fill` first."""
        finite = np.isfinite(values) if values.dtype.kind == "f" else None  # only floats hold NaN or inf
        if finite is not None and finite.all():
            finite = None
        values = values.astype(np.float64)
        if self.mode == "per-image":
            measured = values if finite is None else values[finite]
            low, high = (float(measured.min()), float(measured.max())) if measured.size else (0.0, 0.0)
        elif self.mode == "full-range":
            low, high = 0.0, type_high
        else:
            low, high = self.low, self.high
        if finite is not None:
            values = np.where(finite, values, low if self.fill is None else self.fill)
        if high <= low:  # a constant image (per-image) has nothing to stretch: black
            return np.zeros(values.shape, dtype=np.uint8)
        return np.clip(np.floor((values - low) * (255.0 / (high - low)) + 0.5), 0, 255).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["by_modality"] = {name: window.to_dict() for name, window in self.by_modality}
        if not self.by_modality:
            del record["by_modality"]  # as files written before it read
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Window:
        fill = record.get("fill")
        return cls(
            record["mode"],
            float(record.get("low", 0.0)),
            float(record.get("high", 0.0)),
            str(record.get("source", "")),
            None if fill is None else float(fill),
            tuple((str(name), cls.from_dict(window)) for name, window in (record.get("by_modality") or {}).items()),
        )

    def describe(self) -> str:
        fill = "" if self.fill is None else f"; NaN/inf -> {self.fill:g}"
        if self.mode == "fixed":
            said = f"intensity window [{self.low:g}, {self.high:g}] ({self.source}{fill})"
        else:
            said = f"intensity {self.mode} ({self.source}{fill})" if self.source or fill else f"intensity {self.mode}"
        if self.by_modality:
            each = ", ".join(f"{name} [{window.low:g}, {window.high:g}]" for name, window in self.by_modality)
            said += f"; DICOM, a window per modality: {each}"
        return said


FULL_RANGE = Window("full-range")


def type_high(mode: str) -> float:
    return 1.0 if mode == "F" else 65535.0


def is_high_bit(image: Image.Image) -> bool:
    return image.mode in HIGH_BIT_MODES
