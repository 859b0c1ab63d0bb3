"""Decoding any image to 8-bit RGB the same way every time.

- grey (L, 1-bit) is replicated to three channels;
- high-bit images (16- and 32-bit integers, floats; grey, and RGB TIFFs) go through the dataset's intensity window
  (`intensity.py`; `full-range` when none is given), the same for every image so relative brightness is kept;
- DICOM (`.dcm`) through its modality LUT and VOI (`dicom.py`);
- multi-band images (`.npy`, TIFFs with more than RGB, in either layout) become C x H x W uint8 tensors
  (`bands.py`) when the dataset is multi-band (`Decoding.channels`); `data.bands` takes some of their bands, in
  its order (three of them: an RGB image, with the colour views);
- alpha (RGBA, LA, palette with transparency) is composited onto black, i.e. transparent pixels are 0;
- everything else (CMYK, YCbCr, P) goes through PIL's own conversion to RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from hpt.data import bands, dicom
from hpt.data.dicom import DICOM_SUFFIX
from hpt.data.intensity import FULL_RANGE, Window, is_high_bit, type_high


@dataclass(frozen=True)
class Decoding:
    """How a dataset's files become pixels, the same for every image of it and for every use of it (training,
    statistics, the monitor, `hpt eval`): the intensity window of high-bit values, the number of bands the model
    sees (3: every image as 8-bit RGB; another number: multi-band arrays, as C x H x W uint8 tensors), and which
    of each file's bands they are (`data.bands`, 1-based; None: all of them, in the file's order)."""

    window: Window = FULL_RANGE
    channels: int = 3
    bands: tuple[int, ...] | None = None
    draft: int = 0
    """JPEGs are decoded at 1/2, 1/4 or 1/8 of each side (PIL's draft mode: the DCT scaled down, most of the
    decoder's work skipped) while the square root of their decoded area stays at least this many pixels, so that
    every crop made of them still has at least its output's pixels (`draft_for`); 0: at full size. Training's
    views set it; what is evaluated or measured is decoded at full size. Not recorded: it changes how fast
    pixels are made, not what a model learns from (a crop is resized from fewer, still enough, pixels)."""

    @staticmethod
    def draft_for(size: int, min_scale: float) -> int:
        """The `draft` a random resized crop to `size` pixels of at least `min_scale` of the image needs: its
        smallest crop, `min_scale` of the area at an aspect ratio of 3/4, then has at least `size` pixels a side."""
        return math.ceil(size / math.sqrt(0.75 * min_scale))

    def __post_init__(self) -> None:
        if self.bands is not None and len(self.bands) != self.channels:
            raise ValueError(f"{len(self.bands)} bands taken ({list(self.bands)}) for {self.channels} channels")

    def __call__(self, path: Path, frame: int | None = None) -> Image.Image | torch.Tensor:
        """The pixels of `path` (of its `frame`, a multi-frame DICOM file's: `ImageList.item`)."""
        if self.bands is not None:
            return self._selected(path, frame)
        if self.channels == 3:  # files with another band count were left out when the dataset was listed
            return load_rgb(path, self.window, frame, self.draft)
        return bands.load_bands(path, self.window)

    def _selected(self, path: Path, frame: int | None) -> Image.Image | torch.Tensor:
        """`bands` of the file: of its stored bands (multi-band TIFF, `.npy`), or of R, G, B for every other
        image; three of them are an RGB image like any other (colour views), another count a tensor."""
        if bands.is_multiband(path):
            taken = bands.load_bands(path, self.window, self.bands)
        else:
            rgb = torch.from_numpy(np.asarray(load_rgb(path, self.window, frame, self.draft)).copy()).permute(2, 0, 1)
            taken = rgb[[b - 1 for b in self.bands or ()]].contiguous()
        if self.channels == 3:
            return Image.fromarray(taken.permute(1, 2, 0).contiguous().numpy(), mode="RGB")
        return taken

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"intensity": self.window.to_dict(), "channels": self.channels}
        return record if self.bands is None else {**record, "bands": list(self.bands)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Decoding:
        taken = record.get("bands")
        return cls(
            Window.from_dict(record["intensity"]),
            int(record.get("channels", 3)),
            None if taken is None else tuple(int(b) for b in taken),
        )


RGB = Decoding()


def load_rgb(path: Path, window: Window = FULL_RANGE, frame: int | None = None, draft: int = 0) -> Image.Image:
    """`path` (`frame` of a multi-frame DICOM file) as 8-bit RGB; a JPEG at a reduced scale where `draft` allows
    (`Decoding.draft`)."""
    if path.suffix.lower() == DICOM_SUFFIX:
        return Image.fromarray(dicom.to_rgb_array(path, window, frame), mode="RGB")
    if path.suffix.lower() in bands.ARRAY_SUFFIXES:  # a 1- or 3-band array in an RGB dataset
        return _bands_as_rgb(path, window)
    with Image.open(path) as image:
        if _high_bit_rgb_tiff(image) or _channel_pages(image, path):  # PIL would read it at 8 bits with its own
            return _bands_as_rgb(path, window)  # scaling (value / 257), or only its first page
        if draft and image.format == "JPEG":
            width, height = image.size
            factor = next((f for f in (8, 4, 2) if math.sqrt(width * height) / f >= draft), 1)
            if factor > 1:  # PIL picks the largest reduction that still gives at least this size
                image.draft(image.mode, (width // factor, height // factor))
        image.load()
        return to_rgb(upright(image), window)


ORIENTATION = 0x0112
"""The EXIF tag a camera records its orientation in: 1 upright, 2-8 mirrored and/or turned."""


def upright(image: Image.Image) -> Image.Image:
    """`image` as it is meant to be seen: turned (and mirrored) as its EXIF orientation says (a phone's photo taken
    upright is stored sideways with orientation 6); unchanged where it records none or 1."""
    if image.getexif().get(ORIENTATION, 1) in (1, None):
        return image
    return ImageOps.exif_transpose(image)


def _bands_as_rgb(path: Path, window: Window) -> Image.Image:
    values = bands.load_bands(path, window).expand(3, -1, -1)  # one band: grey, replicated
    return Image.fromarray(values.permute(1, 2, 0).contiguous().numpy(), mode="RGB")


def _high_bit_rgb_tiff(image: Image.Image) -> bool:
    """A TIFF with three samples of more than 8 bits, from the header PIL has already read."""
    bits = image.tag_v2.get(258, ()) if image.format == "TIFF" else ()  # type: ignore[attr-defined]
    return len(bits) == 3 and max(bits) > 8


def _channel_pages(image: Image.Image, path: Path) -> bool:
    """A TIFF of several pages that are one image's channels (ImageJ/OME), not a stack of images."""
    return image.format == "TIFF" and getattr(image, "n_frames", 1) > 1 and bands.channel_pages(path)


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


def high_bit_values(path: Path, frame: int | None = None) -> np.ndarray | None:
    """The raw values of a high-bit image (what a dataset window is measured on); None for 8-bit images, for
    DICOM files that bring their own window, and for files that cannot be read (screening names those)."""
    if path.suffix.lower() == DICOM_SUFFIX:
        return dicom.values_for_window(path, frame)
    if path.suffix.lower() in bands.ARRAY_SUFFIXES or (
        path.suffix.lower() in bands.TIFF_SUFFIXES and _quietly(bands.is_multiband, path)
    ):
        return bands.multiband_values(path)
    try:
        with Image.open(path) as image:
            if _high_bit_rgb_tiff(image) or _channel_pages(image, path):
                return bands.multiband_values(path)
            if not is_high_bit(image):
                return None
            image.load()
            return np.asarray(image)
    except Exception:  # noqa: BLE001 - a user's file may break a decoder in any way; screening reports it
        return None


def _quietly(check: Any, path: Path) -> bool:
    try:
        return bool(check(path))
    except Exception:  # noqa: BLE001 - a user's file may break a reader in any way; screening reports it
        return False
