"""Decoding any image to 8-bit RGB the same way every time.

- grey (L, 1-bit) is replicated to three channels;
- high-bit images (16- and 32-bit integers, floats) go through the dataset's intensity window
  (`intensity.py`; `full-range` when none is given), the same for every image so relative brightness is kept;
- DICOM (`.dcm`) through its modality LUT and VOI (`dicom.py`);
- alpha (RGBA, LA, palette with transparency) is composited onto black, i.e. transparent pixels are 0;
- everything else (CMYK, YCbCr, P) goes through PIL's own conversion to RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hpt.data import dicom
from hpt.data.intensity import FULL_RANGE, Window, is_high_bit, type_high

DICOM_SUFFIX = ".dcm"


def load_rgb(path: Path, window: Window = FULL_RANGE) -> Image.Image:
    if path.suffix.lower() == DICOM_SUFFIX:
        return Image.fromarray(dicom.to_rgb_array(path, window), mode="RGB")
    with Image.open(path) as image:
        image.load()
        return to_rgb(image, window)


def to_rgb(image: Image.Image, window: Window = FULL_RANGE) -> Image.Image:
    if image.mode == "RGB":
        return image
    if is_high_bit(image):
        grey = window.to_uint8(np.asarray(image), type_high(image.mode))
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")


def high_bit_values(path: Path) -> np.ndarray | None:
    """The raw values of a high-bit image (what a dataset window is measured on); None for 8-bit images, for
    DICOM files that bring their own window, and for files that cannot be read (screening names those)."""
    if path.suffix.lower() == DICOM_SUFFIX:
        return dicom.values_for_window(path)
    try:
        with Image.open(path) as image:
            if not is_high_bit(image):
                return None
            image.load()
            return np.asarray(image)
    except Exception:  # noqa: BLE001 - a user's file may break a decoder in any way; screening reports it
        return None
