"""DICOM files (`.dcm`), read with pydicom (the optional extra: `pip install 'hpt[dicom]'`, which brings the
pylibjpeg decoders of compressed transfer syntaxes with it).

A greyscale file's stored values go through the modality LUT (rescale slope and intercept, or a modality LUT
sequence: CT in Hounsfield units), then through the file's own VOI when it has one (a VOI LUT sequence, or window
centre and width, the first of several, with the standard's LINEAR, LINEAR_EXACT or SIGMOID function; PS3.3
C.11.2), onto 0-255; a file without one gets the dataset's intensity window (`intensity.py`). MONOCHROME1 (high
values dark) is inverted after that, so that bright means dense in every file. Colour files (RGB, YBR, palette)
become RGB.

Screening reads a file's header alone (`read_header`: pydicom with the pixel data's value left unread, ~1 ms a
file where decoding a CR took ~25-500 ms): a file without pixel data, with pixel data cut short (its length
against rows x columns x frames x samples x bits, and against the file's size), of an unsupported photometric
interpretation, or compressed in a transfer syntax that no installed decoder reads (the reason names what to
install) is skipped with the reason in `skipped.jsonl`. A pixel error that only decoding finds (a corrupt JPEG
stream) is met in training, where another image stands in (`unreadable.py`).

A multi-frame file (enhanced CT and MR, ultrasound cines, tomosynthesis) is one image per frame (`headers` says
how many; `files.py` lists each): a frame is decoded alone (pydicom's `pixel_array(path, index=...)`, the rest of
the pixel data left unread), through the rescale and VOI of the enhanced file's functional groups, shared and of
that frame (PS3.3 C.7.6.16), where the modality LUT and VOI read them.

A dataset's files that use the dataset window (greyscale, no VOI of their own) may come from several modalities,
whose values mean different things (CT in Hounsfield units, MR in its scanner's units): the `auto` window is then
measured for each modality (`Window.by_modality`, `window_choice.py`), and each file goes through its own
modality's (`Window.for_modality`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpt.data.intensity import Window
from hpt.errors import first_line

DICOM_SUFFIX = ".dcm"
DECODERS = "pip install 'hpt[dicom]' (pylibjpeg with pylibjpeg-libjpeg and pylibjpeg-openjpeg), or python-gdcm"
PIXEL_DATA = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
GREY = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR")
FLOAT_BITS = {0x7FE00008: 32, 0x7FE00009: 64}
"""Float and Double Float Pixel Data: bits a value, whatever BitsAllocated says."""
DEFER_BYTES = 1024
"""Elements larger than this are located, not read, when a header is screened: the pixel data above all."""


warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
"""pydicom warns about each harmless deviation from the standard it reads past (a value of the wrong VR, implicit
VR where explicit was declared); hpt names what makes a file unusable itself. Set once, here, rather than around
each read: `warnings.catch_warnings` is not safe in screening's threads (one thread's context would swallow or
restore another's)."""


class DicomProblem(Exception):
    """Why a DICOM file cannot be used, in words for `skipped.jsonl`."""


@dataclass(frozen=True)
class Header:
    """What screening learns of a usable DICOM file from its header."""

    modality: str
    """(0008,0060), e.g. CT, MR, CR, US; '' when the file has none."""
    grey: bool
    own_window: bool
    """A VOI (window centre and width, or a VOI LUT) of its own: the dataset window does not apply to it."""
    width: int
    height: int
    frames: int = 1

    @property
    def uses_dataset_window(self) -> bool:
        return self.grey and not self.own_window


def read_header(path: Path) -> Header:
    """The file's `Header`, or DicomProblem with why it cannot be used; its pixel data is never decoded."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)
    except pydicom.errors.InvalidDicomError:
        raise DicomProblem("not a DICOM file") from None
    except (EOFError, ValueError, KeyError, TypeError, AttributeError, NotImplementedError) as exc:
        raise DicomProblem(f"truncated or corrupt ({type(exc).__name__}: {first_line(exc)})") from None
    element = next((ds.get_item(name, keep_deferred=True) for name in PIXEL_DATA if name in ds), None)
    if element is None:  # pydicom leaves out a pixel data element that the file's end cuts short
        raise DicomProblem(CUT_SHORT if _names_pixel_data(path) else "DICOM without pixel data")
    frames, rows, columns = _frames(ds), int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if not rows or not columns:
        raise DicomProblem(f"no image ({rows} rows x {columns} columns)")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric not in GREY + COLOUR:
        raise DicomProblem(f"photometric interpretation {photometric}: not supported")
    _check_pixel_data(path, ds, element, frames * rows * columns, photometric)
    own_window = has_voi(with_frame(ds, 0))
    return Header(str(ds.get("Modality", "") or ""), photometric in GREY, own_window, columns, rows, frames)


FRAME_GROUPS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")
"""The functional groups of an enhanced file that hold what other files keep at the top level: rescale slope,
intercept and type; window centre, width and VOI LUT function."""


def with_frame(ds: Any, frame: int) -> Any:
    """`ds` with the shared functional groups', then frame `frame`'s, rescale and VOI set at its top level (in
    place), where pydicom's modality LUT and hpt's VOI read them; a file without functional groups as it is."""
    shared, per_frame = ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")
    items = [shared[0] if shared else None, per_frame[frame] if per_frame and frame < len(per_frame) else None]
    for item in (found for found in items if found is not None):
        for name in FRAME_GROUPS:
            if name in item and item[name].value:
                for element in item[name][0]:
                    ds[element.tag] = element
    return ds


def _check_pixel_data(path: Path, ds: Any, element: Any, pixels: int, photometric: str) -> None:
    """A decoder for its transfer syntax, and (uncompressed) as many bytes as its header says it holds."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        raise DicomProblem("no transfer syntax in its file meta information")
    if syntax.is_compressed:
        try:
            available = _decodable(syntax)
        except NotImplementedError:
            raise DicomProblem(f"compressed as {syntax.name}, which pydicom has no decoder for") from None
        if not available:
            raise DicomProblem(f"compressed as {syntax.name}, which no installed decoder reads: {DECODERS}")
        return
    length, start = getattr(element, "length", None), getattr(element, "value_tell", None)
    if length is None or length == 0xFFFFFFFF:
        return  # a value read already, or of undefined length: decoding finds what is wrong with it
    bits = FLOAT_BITS.get(int(element.tag), int(ds.get("BitsAllocated", 0) or 0))
    samples = 2 if photometric == "YBR_FULL_422" else int(ds.get("SamplesPerPixel", 1) or 1)  # 4:2:2: Y Y Cb Cr
    expected = -(-pixels * samples * bits // 8)
    if length < expected:
        raise DicomProblem(f"truncated or corrupt (pixel data of {length} bytes, {expected} expected)")
    if start is not None and not syntax.is_deflated and start + length > os.stat(path).st_size:
        raise DicomProblem(f"truncated or corrupt (the file ends {start + length - os.stat(path).st_size} bytes early)")


CUT_SHORT = "truncated or corrupt (its pixel data is cut short)"


def _names_pixel_data(path: Path, chunk: int = 16 << 20) -> bool:
    """Whether the file's bytes hold the Pixel Data tag (7FE0,0010), in either byte order (read in chunks)."""
    tags, tail = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"), b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            data, tail = tail + block, block[-3:]
            if any(tag in data for tag in tags):
                return True
    return False


def _decodable(syntax: Any) -> bool:
    """Whether an installed plugin decodes `syntax` (NotImplementedError: pydicom has no decoder for it at all)."""
    from pydicom.pixels import get_decoder

    return bool(get_decoder(syntax).is_available)


def _frames(ds: Any) -> int:
    value = ds.get("NumberOfFrames", 1)
    try:
        return max(1, int(value or 1))
    except (TypeError, ValueError):
        raise DicomProblem(f"truncated or corrupt (NumberOfFrames is {str(value)!r}, not a number)") from None


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise DicomProblem("DICOM needs pydicom: pip install 'hpt[dicom]'") from None
    return pydicom


def read(path: Path, frame: int | None = None) -> tuple[Any, np.ndarray]:
    """(the dataset, with `frame`'s functional groups at its top level; that frame's pixel array) or DicomProblem.
    `frame`: 0-based, of a multi-frame file (None: the first); only that frame's pixel data is read."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)  # the pixel data is read below, one frame of it
    except pydicom.errors.InvalidDicomError:
        raise DicomProblem("not a DICOM file") from None
    if not any(name in ds for name in PIXEL_DATA):
        raise DicomProblem("DICOM without pixel data")
    frames, index = _frames(ds), frame or 0
    if index >= frames:
        raise DicomProblem(f"no frame {index} (the file has {frames})")
    try:
        return with_frame(ds, index), _frame_pixels(path, ds, index) if frames > 1 else ds.pixel_array
    except (RuntimeError, NotImplementedError) as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed and not _decodable(syntax):
            raise DicomProblem(f"compressed as {syntax.name}, which no installed decoder reads: {DECODERS}") from None
        said = " ".join(str(exc).split())[:200]  # pydicom's first line only says that every plugin failed
        named = f" (compressed as {syntax.name}: {said})" if syntax else f" ({said})"
        raise DicomProblem(f"cannot decode its pixel data{named}") from None
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise DicomProblem(f"truncated or corrupt ({type(exc).__name__}: {first_line(exc)})") from None


def _frame_pixels(path: Path, ds: Any, index: int) -> np.ndarray:
    """One frame of a multi-frame file: read alone from the file, or, where pydicom's reader of a path cannot
    (a deflated dataset, an odd offset table), from the whole pixel data."""
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(path, index=index)
    except (ValueError, AttributeError, KeyError):
        return pixel_array(ds, index=index)


def is_grey(ds: Any) -> bool:
    return str(ds.get("PhotometricInterpretation", "MONOCHROME2")) in ("MONOCHROME1", "MONOCHROME2")


def has_voi(ds: Any) -> bool:
    return "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)


def modality_values(ds: Any, pixels: np.ndarray) -> np.ndarray:
    """Stored values -> the modality's values (float64), through the modality LUT or rescale."""
    from pydicom.pixels import apply_modality_lut

    return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)


def to_rgb_array(path: Path, window: Window, frame: int | None = None) -> np.ndarray:
    """H x W x 3 uint8 (of `frame`, of a multi-frame file)."""
    ds, pixels = read(path, frame)
    if not is_grey(ds):
        return _colour(ds, pixels)
    values = modality_values(ds, pixels)
    if has_voi(ds):
        grey = voi_uint8(ds, values)
    else:  # the dataset window, its modality's where it has one of its own
        grey = window.for_modality(str(ds.get("Modality", "") or "")).to_uint8(values, type_top(ds))
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 255 - grey
    return np.repeat(grey[..., None], 3, axis=-1)


def type_top(ds: Any) -> float:
    """The top of a file's stored values (`full-range`): 2^BitsStored - 1."""
    return float(2 ** int(ds.get("BitsStored", 16) or 16) - 1)


def values_for_window(path: Path, frame: int | None = None) -> np.ndarray | None:
    """The modality values the dataset window is measured on; None for files that do not use it (their own
    VOI, colour) or that cannot be read (screening names those)."""
    try:
        ds, pixels = read(path, frame)
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
