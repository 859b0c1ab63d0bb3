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


def export_backbone(backbone: Backbone, fmt: str, image_size: int, out: Path) -> Exported:
    """Write `out` in `fmt` (via a temporary file, renamed once checked) and return how close it came."""
    if fmt not in FORMATS:
        raise HptError(f"--format {fmt}: expected one of {', '.join(FORMATS)}, or hub")
    backbone.check_image_size(image_size, "--image-size")
    check_writable_file(out)
    model = backbone.model.eval()
    example = torch.randn(2, backbone.in_chans, image_size, image_size, generator=torch.Generator().manual_seed(0))
    probe = torch.randn(3, backbone.in_chans, image_size, image_size, generator=torch.Generator().manual_seed(1))
    tmp = temporary_path(out)
    try:
        with torch.no_grad():
            expected = model(probe)
            got = (
                _write_onnx(model, example, probe, tmp)
                if fmt == "onnx"
                else _write_torchscript(model, example, probe, tmp)
            )
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


def _write_onnx(model: torch.nn.Module, example: torch.Tensor, probe: torch.Tensor, path: Path) -> torch.Tensor:
    try:
        import onnxruntime
    except ImportError:
        raise HptError("--format onnx needs onnx, onnxscript and onnxruntime: pip install 'hpt[export]'") from None
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter reports each of its passes on stdout
        program = torch.onnx.export(
            model,
            (example,),
            None,
            dynamo=True,
            input_names=["images"],
            output_names=["features"],
            dynamic_shapes=({0: "batch"},),
        )
    if program is None:
        raise HptError("the ONNX exporter returned no program")
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": probe.numpy()})[0])


def _write_torchscript(model: torch.nn.Module, example: torch.Tensor, probe: torch.Tensor, path: Path) -> torch.Tensor:
    traced = torch.jit.trace(model, example)
    traced.save(str(path))
    return torch.jit.load(str(path))(probe)
