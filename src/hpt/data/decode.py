"""Decoding any image to 8-bit RGB the same way every time.

- grey (L, 1-bit) is replicated to three channels;
- 16-bit and 32-bit integer images are scaled from their full type range (65535) to 0-255, so that two
  16-bit images keep their relative brightness (no per-image stretching);
- alpha (RGBA, LA, palette with transparency) is composited onto black, i.e. transparent pixels are 0;
- everything else (CMYK, YCbCr, P) goes through PIL's own conversion to RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT:
        values = np.asarray(image, dtype=np.float64)
        grey = np.clip(values / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")
