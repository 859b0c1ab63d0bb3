"""ONNX and TorchScript files of a run's backbone, each checked against PyTorch before it is kept.

The file takes a batch of normalised images (N x C x S x S, the run's mean and std applied: `config.json`)
and returns the pooled features (N x F); the batch size is free, the image size the one exported. The check
runs a probe batch of a different size through both and compares: float32 kernels summing in another order
differ by ~1e-6 relative per layer, so a difference above 1e-4 of the features' scale is a wrong export,
never rounding.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from hpt.backbones import Backbone
from hpt.core.atomic import check_writable_file, temporary_path
from hpt.errors import HptError
from hpt.extras import require

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4
"""Largest difference from PyTorch's features allowed, relative to the largest feature (at least 1)."""


@dataclass(frozen=True)
class Exported:
    path: Path
    max_difference: float
    """Largest absolute difference from PyTorch's features on the probe batch."""
    scale: float
    """The largest absolute feature on the probe batch."""


@dataclass(frozen=True)
class GraphInput:
    """What the exported file takes: its input's name, an example to trace with and a probe of another batch size
    to check with (of the input's dtype), and the dimensions besides the batch that may vary."""

    name: str
    example: torch.Tensor
    probe: torch.Tensor
    dynamic: dict[int, str]


def normalised_images(channels: int, image_size: int) -> GraphInput:
    """N x C x S x S normalised images: the backbone's own input."""
    shape = (channels, image_size, image_size)
    example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    return GraphInput("images", example, torch.randn(3, *shape, generator=torch.Generator().manual_seed(1)), {})


def export_backbone(
    backbone: Backbone, fmt: str, image_size: int, out: Path, model: torch.nn.Module | None = None,
    inputs: GraphInput | None = None,
) -> Exported:  # fmt: skip
    """Write `out` in `fmt` (via a temporary file, renamed once checked) and return how close it came. `model` and
    `inputs`: another module around the backbone and what it takes (`preprocessing.RawInput`)."""
    if fmt not in FORMATS:
        raise HptError(f"--format {fmt}: expected one of {', '.join(FORMATS)}, or hub")
    backbone.check_image_size(image_size, "--image-size")
    check_writable_file(out)
    model = (model or backbone.model).eval()
    inputs = inputs or normalised_images(backbone.in_chans, image_size)
    tmp = temporary_path(out)
    try:
        with torch.no_grad():
            expected = model(inputs.probe)
            got = _write_onnx(model, inputs, tmp) if fmt == "onnx" else _write_torchscript(model, inputs, tmp)
        difference, scale = float((got - expected).abs().max()), float(expected.abs().max())
        if not difference <= TOLERANCE * max(1.0, scale):
            raise HptError(
                f"the {fmt} export of {backbone.name} differs from PyTorch by {difference:.2e} (features up to "
                f"{scale:.2f}); not written"
            )
        os.replace(tmp, out)
    except OSError as exc:
        raise HptError(f"could not write '{out}' ({exc.strerror or exc}); nothing was written there") from None
    finally:
        tmp.unlink(missing_ok=True)
    return Exported(out, difference, scale)


def _write_onnx(model: torch.nn.Module, inputs: GraphInput, path: Path) -> torch.Tensor:
    require("export", "--format onnx")
    import onnxruntime

    with contextlib.redirect_stdout(io.StringIO()):  # the exporter reports each of its passes on stdout
        program = torch.onnx.export(
            model,
            (inputs.example,),
            None,
            dynamo=True,
            input_names=[inputs.name],
            output_names=["features"],
            dynamic_shapes=({0: "batch", **inputs.dynamic},),
        )
    if program is None:
        raise HptError("the ONNX exporter returned no program")
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {inputs.name: inputs.probe.numpy()})[0])


def _write_torchscript(model: torch.nn.Module, inputs: GraphInput, path: Path) -> torch.Tensor:
    traced = torch.jit.trace(model, inputs.example)
    traced.save(str(path))
    return torch.jit.load(str(path))(inputs.probe)
