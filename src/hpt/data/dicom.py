"""DICOM files (`.dcm`), read with pydicom (the optional extra: `pip install 'hpt[medical]'`).

A greyscale file's stored values go through the modality LUT (rescale slope and intercept, or a modality LUT
sequence: CT in Hounsfield units), then through the file's own VOI when it has one (a VOI LUT sequence, or window
centre and width, the first of several, with the standard's LINEAR, LINEAR_EXACT or SIGMOID function; PS3.3
C.11.2), onto 0-255; a file without one gets the dataset's intensity window (`intensity.py`). MONOCHROME1 (high
values dark) is inverted after that, so that bright means dense in every file. Colour files (RGB, YBR, palette)
become RGB.

Not supported, and so skipped with the reason in `skipped.jsonl`: multi-frame files (write each frame as its own
file), files without pixel data, and compressed files that no installed decoder reads (the reason names what to
install).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpt.data.intensity import Window
from hpt.errors import first_line

DECODERS = "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or python-gdcm)"


class DicomProblem(Exception):
    """Why a DICOM file cannot be used, in words for `skipped.jsonl`."""


def read(path: Path, max_pixels: int | None = None) -> tuple[Any, np.ndarray]:
    """(the dataset, its pixel array) or DicomProblem. `max_pixels`: refuse larger images before decoding."""
    try:
        import pydicom
    except ImportError:
        raise DicomProblem("DICOM needs pydicom: pip install 'hpt[medical]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about harmless deviations from the standard
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            raise DicomProblem("not a DICOM file") from None
        if not any(name in ds for name in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise DicomProblem("DICOM without pixel data")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise DicomProblem(f"multi-frame DICOM ({frames} frames): not supported; write each frame as its own file")
        pixels = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0))
        if max_pixels is not None and pixels > max_pixels:
            raise DicomProblem(f"{pixels} pixels, over the limit of {max_pixels} (data.max_image_pixels)")
        try:
            return ds, ds.pixel_array
        except (RuntimeError, NotImplementedError) as exc:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            if syntax is not None and syntax.is_compressed:
                raise DicomProblem(
                    f"compressed as {syntax.name}, which no installed decoder reads: {DECODERS}"
                ) from None
            raise DicomProblem(f"cannot decode its pixel data ({first_line(exc)})") from None
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise DicomProblem(f"truncated or corrupt ({type(exc).__name__}: {first_line(exc)})") from None


def is_grey(ds: Any) -> bool:
    return str(ds.get("PhotometricInterpretation", "MONOCHROME2")) in ("MONOCHROME1", "MONOCHROME2")


def has_voi(ds: Any) -> bool:
    return "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)


def modality_values(ds: Any, pixels: np.ndarray) -> np.ndarray:
    """Stored values -> the modality's values (float64), through the modality LUT or rescale."""
    from pydicom.pixels import apply_modality_lut

    return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)


def to_rgb_array(path: Path, window: Window) -> np.ndarray:
    """H x W x 3 uint8."""
    ds, pixels = read(path)
    if not is_grey(ds):
        return _colour(ds, pixels)
    values = modality_values(ds, pixels)
    grey = voi_uint8(ds, values) if has_voi(ds) else window.to_uint8(values, float(2 ** int(ds.BitsStored) - 1))
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 255 - grey
    return np.repeat(grey[..., None], 3, axis=-1)


def values_for_window(path: Path) -> np.ndarray | None:
    """The modality values the dataset window is measured on; None for files that do not use it (their own
    VOI, colour) or that cannot be read (screening names those)."""
    try:
        ds, pixels = read(path)
    except DicomProblem:
        return None
    return modality_values(ds, pixels) if is_grey(ds) and not has_voi(ds) else None


def voi_uint8(ds: Any, values: np.ndarray) -> np.ndarray:
    """The file's VOI onto 0-255: a VOI LUT sequence through pydicom, else its first window (PS3.3 C.11.2.1)."""
    if "VOILUTSequence" in ds:
        from pydicom.pixels import apply_voi_lut

        out = np.asarray(apply_voi_lut(values, ds, prefer_lut=True), dtype=np.float64)
        top = 2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
        return np.clip(np.floor(out * (255.0 / top) + 0.5), 0, 255).astype(np.uint8)
    centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    if function == "SIGMOID":
        scaled = 255.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
    else:
        if function == "LINEAR":  # LINEAR_EXACT uses centre and width as they are
            centre, width = centre - 0.5, max(width - 1.0, 1e-12)
        scaled = ((values - centre) / width + 0.5) * 255.0
        scaled = np.where(values <= centre - width / 2, 0.0, np.where(values > centre + width / 2, 255.0, scaled))
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def _first(value: Any) -> float:
    """A window attribute may hold several windows (VM > 1): the first is the default one."""
    return float(value[0]) if isinstance(value, Sequence) and not isinstance(value, str) else float(value)


def _colour(ds: Any, pixels: np.ndarray) -> np.ndarray:
    if str(ds.PhotometricInterpretation) == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        pixels = apply_color_lut(pixels, ds)
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise DicomProblem(f"photometric interpretation {ds.PhotometricInterpretation} with shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        return pixels
    palette = str(ds.PhotometricInterpretation) == "PALETTE COLOR"  # palette LUT entries are 16-bit
    top = 65535.0 if palette else float(2 ** int(ds.get("BitsStored", 16)) - 1)
    return np.clip(np.floor(pixels.astype(np.float64) * (255.0 / top) + 0.5), 0, 255).astype(np.uint8)
