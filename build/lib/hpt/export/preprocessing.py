"""A model's whole preprocessing, for code downstream: raw pixels in, the model's input out.

timm's `pretrained_cfg` (`config.json`) can say the mean, std, input size and channels, not how a 16-bit scan, a
float tile or a DICOM became the 8 bits they apply to. `preprocessing(MODEL)` reads all of it from what the run
exported (`config.json`'s `hpt.decoding`, or a weights file's provenance) and returns a `Preprocessing`, whose
call does to a raw array, or to a file, exactly what hpt did to the images the model learnt on:

1. the bands the model was trained on, in their order (`data.bands`, numbered from 1);
2. the intensity window onto 0-255 (DICOM: the modality's own, if it has one; NaN, i.e. no-data, becomes the
   window's fill), rounded to whole 8-bit levels as hpt rounds them (8-bit values are used as they are);
3. the shorter side resized to the image size (bilinear, antialiased: PIL's for RGB, torchvision's for other
   band counts, as hpt), centre-cropped, scaled to [0, 1] and normalised with the run's mean and std.

`round_to_8_bits=False` skips the rounding of step 2 (the window's values kept as floats): the model never saw
such inputs, and the difference it makes is measured in `benchmarks/preprocessing.py`.

`RawInput` is steps 1-2 and the normalisation as a module in front of the backbone, for `hpt export --format
onnx|torchscript --with-preprocessing`: N x S x S x C raw arrays of the run's sample type go straight in
(tiles at the model's size: the file does not resize).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hpt.checkpoints.files import read_provenance
from hpt.checkpoints.provenance import FileProvenance
from hpt.core.run_files import BACKBONE, HUB_CONFIG
from hpt.data.decode import Decoding
from hpt.data.intensity import FULL_RANGE, Window, type_high
from hpt.data.views import eval_view
from hpt.errors import HptError
from hpt.export.formats import GraphInput

RAW_TYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32")
"""Sample types `RawInput` takes: 8-bit values are used as they are, the others go through the window."""


@dataclass(frozen=True)
class Preprocessing:
    """What hpt did to every image the model learnt on (see the module's docstring)."""

    decoding: Decoding
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    round_to_8_bits: bool = True

    def __call__(self, pixels: np.ndarray | str | Path, modality: str = "", frame: int | None = None) -> torch.Tensor:
        """C x S x S float32, the model's input, from a file (read as hpt reads it: DICOM with its header's
        modality LUT and VOI; `frame` of a multi-frame one) or a raw H x W or H x W x C array (`modality`: a
        DICOM array's, for its window)."""
        if isinstance(pixels, str | Path):
            if not self.round_to_8_bits:
                raise HptError("round_to_8_bits=False takes raw arrays; a file is read as hpt reads it")
            return self.view(self.decoding(Path(pixels), frame))
        return self.view(self.pixels(np.asarray(pixels), modality))

    @property
    def view(self) -> Any:
        return eval_view(self.image_size, self.mean, self.std)

    def pixels(self, raw: np.ndarray, modality: str = "") -> Image.Image | torch.Tensor:
        """Steps 1-2: an RGB image (three channels) or a C x H x W tensor, uint8 (float in [0, 1] unrounded)."""
        values = raw[..., None] if raw.ndim == 2 else raw
        if values.ndim != 3:
            raise HptError(f"expected an H x W or H x W x C array, got shape {raw.shape}")
        if self.decoding.bands:
            if values.shape[-1] < max(self.decoding.bands):
                raise HptError(f"the model takes bands {list(self.decoding.bands)}; the array has {values.shape[-1]}")
            values = values[..., [b - 1 for b in self.decoding.bands]]
        channels = self.decoding.channels
        if values.shape[-1] == 1 and channels == 3:
            values = np.repeat(values, 3, axis=-1)  # grey, as hpt reads it: replicated
        if values.shape[-1] != channels:
            raise HptError(f"the model takes {channels} channels; the array has {values.shape[-1]}")
        window = self.decoding.window.for_modality(modality)
        if values.dtype == np.uint8:
            scaled = values
        elif self.round_to_8_bits:
            scaled = window.to_uint8(values, _top(values.dtype))
        else:
            low, high = _ends(window, values, _top(values.dtype))
            filled = np.where(np.isnan(values), low if window.fill is None else window.fill, values) if (
                values.dtype.kind == "f") else values  # fmt: skip
            floats = np.clip((filled.astype(np.float64) - low) / max(high - low, 1e-12), 0, 1).astype(np.float32)
            return torch.from_numpy(np.ascontiguousarray(floats.transpose(2, 0, 1)))
        if channels == 3:
            return Image.fromarray(np.ascontiguousarray(scaled), mode="RGB")
        return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))

    def numpy_code(self) -> str:
        """The same steps as plain NumPy, for the model card: raw H x W x C array of S x S pixels in, C x S x S
        float32 out (resize larger arrays first, as in step 3)."""
        window, bands = self.decoding.window, self.decoding.bands
        lines = ["import numpy as np", "", "def preprocess(raw):  # H x W x C raw values (H = W = the image size)"]
        lines.append("    x = raw[..., None] if raw.ndim == 2 else raw")
        if bands:
            lines.append(f"    x = x[..., {[b - 1 for b in bands]}]  # data.bands {list(bands)}, from 1")
        if self.decoding.channels == 3:
            lines.append("    x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x  # grey as RGB")
        if window.mode == "fixed":
            fill = window.low if window.fill is None else window.fill
            lines += [
                "    if x.dtype != np.uint8:  # 8-bit values are used as they are",
                f"        x = np.where(np.isnan(x), {fill!r}, x) if x.dtype.kind == 'f' else x.astype(np.float64)",
                f"        scale = 255.0 / {window.high - window.low!r}",
                f"        x = np.clip(np.floor((x - {window.low!r}) * scale + 0.5), 0, 255)",
            ]
        elif window.mode == "per-image":
            lines += [
                "    if x.dtype != np.uint8:  # each image's own finite minimum and maximum",
                "        lo, hi = np.nanmin(x), np.nanmax(x)",
                "        x = np.clip(np.floor((np.nan_to_num(x, nan=lo) - lo) * (255.0 / (hi - lo)) + 0.5), 0, 255)",
            ]
        else:
            lines += [
                "    if x.dtype != np.uint8:  # the type's range: 0-1 for floats, 0-65535 for integers",
                "        top = 1.0 if x.dtype.kind == 'f' else 65535.0",
                "        x = np.clip(np.floor(np.nan_to_num(x, nan=0.0) * (255.0 / top) + 0.5), 0, 255)",
            ]
        lines += [
            "    x = x.astype(np.float32) / 255.0",
            f"    x = (x - np.float32({list(self.mean)})) / np.float32({list(self.std)})",
            "    return x.transpose(2, 0, 1)  # C x H x W",
        ]
        if window.by_modality:
            lines.insert(3, f"    # DICOM: each modality's window instead: {window.describe()}")
        return "\n".join(lines)


def preprocessing(model: str | Path, round_to_8_bits: bool = True) -> Preprocessing:
    """The preprocessing of a run folder, an exported folder (its `config.json`) or an hpt weights file.

    Example::

        import hpt, tifffile, timm
        prepare = hpt.preprocessing("runs/aerial")             # the folder hpt wrote (or its hub copy)
        tile = tifffile.imread("tile.tif")                     # raw uint16, H x W x 8
        model = timm.create_model("local-dir:runs/aerial", pretrained=True).eval()
        features = model(prepare(tile)[None])                  # what hpt's own evaluation computes
    """
    path = Path(model)
    config = path / HUB_CONFIG
    if path.is_dir() and config.is_file():
        return from_config(json.loads(config.read_text()), round_to_8_bits)
    weights = path / BACKBONE if path.is_dir() else path
    if not weights.is_file():
        raise HptError(f"'{model}': expected a run folder, an exported folder (config.json) or an hpt weights file")
    record = read_provenance(weights)
    if not record:
        raise HptError(f"'{weights}' records no preprocessing (not written by hpt)")
    return from_provenance(FileProvenance.from_dict(record), round_to_8_bits)


def from_provenance(provenance: FileProvenance, round_to_8_bits: bool = True) -> Preprocessing:
    data = provenance.data
    if data.mean is None or data.std is None or provenance.image_size is None:
        raise HptError("the model records no mean, std or image size: it was not pretrained by hpt")
    window = Window.from_dict(data.intensity) if data.intensity else FULL_RANGE
    decoding = Decoding(window, data.channels, tuple(data.bands) if data.bands else None)
    return Preprocessing(decoding, tuple(data.mean), tuple(data.std), int(provenance.image_size), round_to_8_bits)


def from_config(config: dict[str, Any], round_to_8_bits: bool = True) -> Preprocessing:
    """From an exported `config.json` (timm's `pretrained_cfg` and hpt's `decoding`)."""
    try:
        cfg, decoding = config["pretrained_cfg"], dict(config["hpt"]["decoding"])
        decoding.setdefault("intensity", FULL_RANGE.to_dict())
        size = int(cfg["input_size"][-1])
        return Preprocessing(Decoding.from_dict(decoding), tuple(cfg["mean"]), tuple(cfg["std"]), size, round_to_8_bits)
    except (KeyError, TypeError, ValueError) as exc:
        raise HptError(f"config.json: not one hpt exported ({type(exc).__name__}: {exc})") from None


class RawInput(torch.nn.Module):
    """The backbone behind steps 1-2 and the normalisation, for ONNX and TorchScript: N x S x S x C raw values of
    `raw_type` (C: the file's bands) -> N x F features. The window's arithmetic is in float64, as hpt's, so every
    value rounds to the level hpt's did."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: torch.nn.Module, prepared: Preprocessing, raw_type: str) -> None:
        super().__init__()
        window = prepared.decoding.window
        if window.by_modality:
            raise HptError(
                "--with-preprocessing: this model's DICOM files had a window per modality, which a file with one "
                "input cannot choose; use hpt.preprocessing(RUN)(file) (it reads each file's modality)"
            )
        check_raw_type(raw_type)
        self.model, self.raw_type, self.mode = model, raw_type, window.mode
        bands = prepared.decoding.bands
        self.bands = [b - 1 for b in bands] if bands else None
        top = type_high("F" if raw_type.startswith("float") else "I")
        low, high = (0.0, top) if window.mode == "full-range" else (window.low, window.high)
        self.low, self.high, self.fill = low, high, window.fill
        self.register_buffer("mean", torch.tensor(prepared.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(prepared.std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw[..., self.bands] if self.bands is not None else raw  # N x S x S x C
        if self.raw_type == "uint8":
            levels = x.to(torch.float32)  # 8-bit values as they are
        else:
            values = x.to(torch.float64)
            if self.mode == "per-image":
                finite = torch.isfinite(values)
                low = torch.where(finite, values, torch.inf).amin(dim=(1, 2, 3), keepdim=True)
                high = torch.where(finite, values, -torch.inf).amax(dim=(1, 2, 3), keepdim=True)
                fill = low if self.fill is None else torch.full_like(low, self.fill)
                values = torch.where(finite, values, fill)
                scale = 255.0 / (high - low).clamp_min(1e-12)
            else:
                low = torch.tensor(self.low, dtype=torch.float64)
                values = torch.where(torch.isnan(values), low if self.fill is None else self.fill, values)
                scale = torch.tensor(255.0 / max(self.high - self.low, 1e-12), dtype=torch.float64)
            levels = torch.floor((values - low) * scale + 0.5).clamp(0, 255).to(torch.float32)
        images = levels.permute(0, 3, 1, 2) / 255.0
        if images.shape[1] == 1 and self.mean.shape[1] == 3:
            images = images.expand(-1, 3, -1, -1)  # grey, as hpt reads it: replicated
        return self.model((images - self.mean) / self.std)


def check_raw_type(raw_type: str) -> None:
    if raw_type not in RAW_TYPES:
        raise HptError(f"--raw-type {raw_type}: expected one of {', '.join(RAW_TYPES)}")


def _top(dtype: np.dtype) -> float:
    return type_high("F" if dtype.kind == "f" else "I")


def _ends(window: Window, values: np.ndarray, top: float) -> tuple[float, float]:
    """The window's [low, high] for `values` (per-image: their own finite minimum and maximum)."""
    if window.mode == "per-image":
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if window.mode == "full-range":
        return 0.0, top
    return window.low, window.high


def raw_input(prepared: Preprocessing, raw_type: str, size: int, bands: int | None = None) -> GraphInput:
    """What `RawInput` takes: N x S x S x C values of `raw_type`, C the file's bands (`bands`; default: the
    highest band the model takes, else its channels). Its probe spans the window and beyond it; floats hold NaN."""
    check_raw_type(raw_type)
    taken = prepared.decoding.bands
    count = bands or (max(taken) if taken else prepared.decoding.channels)
    window = prepared.decoding.window
    low, high = (0.0, 255.0) if raw_type == "uint8" else _ends(window, np.zeros(1), _top(np.dtype(raw_type)))
    if high <= low:  # per-image: any range
        low, high = 0.0, 1000.0
    margin = (high - low) / 4
    info = np.iinfo(raw_type) if raw_type != "float32" else None

    def draw(count_: int, seed: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        values = rng.uniform(low - margin, high + margin, (count_, size, size, count))
        if info is not None:
            values = np.clip(np.round(values), info.min, info.max)
        else:
            values[rng.random(values.shape) < 0.01] = np.nan
        return torch.from_numpy(values.astype(raw_type))

    return GraphInput("raw", draw(2, 0), draw(3, 1), {})
