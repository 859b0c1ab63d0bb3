"""`hpt export RUN --format hub|onnx|torchscript`: the run's exported backbone, written for a downstream tool."""

from __future__ import annotations

from pathlib import Path

from hpt.checkpoints.sources import load_backbone
from hpt.core.run_files import EXPORTS
from hpt.errors import HptError
from hpt.eval.runner import model_image_size
from hpt.export.formats import export_backbone
from hpt.export.hub import write_hub_files


def export_run(spec: str, fmt: str, image_size: int | None = None, out: Path | None = None) -> list[str]:
    """Write the files; return one line about each."""
    run = Path(spec)
    if not run.is_dir():
        raise HptError(f"'{spec}': expected a run folder (hpt export reads its backbone.safetensors)")
    backbone, origin = load_backbone(spec, role="model")
    if fmt == "hub":
        return [f"wrote {path}" for path in write_hub_files(run, backbone.num_features)]
    size = model_image_size(backbone, origin.provenance, image_size)
    exported = export_backbone(backbone, fmt, size, out or run / EXPORTS[fmt])
    return [
        f"wrote {exported.path}: N x {backbone.in_chans} x {size} x {size} normalised images -> N x "
        f"{backbone.num_features} features; largest difference from PyTorch {exported.max_difference:.1e} "
        f"(features up to {exported.scale:.2f})"
    ]
