"""`hpt export RUN --format hub|onnx|torchscript`: the run's exported backbone, written for a downstream tool."""

from __future__ import annotations

from pathlib import Path

from hpt.checkpoints.sources import load_backbone, modified_warning
from hpt.core.run_files import EXPORTS
from hpt.errors import HptError
from hpt.eval.runner import model_image_size
from hpt.export.formats import export_backbone
from hpt.export.hub import write_hub_files
from hpt.export.preprocessing import RawInput, from_provenance, raw_input


def export_run(
    spec: str,
    fmt: str,
    image_size: int | None = None,
    out: Path | None = None,
    raw_type: str | None = None,
    raw_bands: int | None = None,
) -> list[str]:
    """Write the files; return one line about each. `raw_type`: `--with-preprocessing`'s sample type (the file
    takes raw arrays of it, `preprocessing.RawInput`); `raw_bands`: their band count."""
    run = Path(spec)
    if not run.is_dir():
        raise HptError(f"'{spec}': expected a run folder (hpt export reads its backbone.safetensors)")
    backbone, origin = load_backbone(spec, role="model")
    said = [warning] if (warning := modified_warning(origin)) else []
    if fmt == "hub":
        if raw_type:
            raise HptError("--with-preprocessing is for onnx and torchscript; hub files carry it in config.json")
        return [*said, *(f"wrote {path}" for path in write_hub_files(run, backbone.num_features))]
    size = model_image_size(backbone, origin.provenance, image_size)
    target = out or run / (EXPORTS[fmt] if not raw_type else EXPORTS[fmt].replace("backbone.", "raw-backbone."))
    if not raw_type:
        exported = export_backbone(backbone, fmt, size, target)
        takes = f"N x {backbone.in_chans} x {size} x {size} normalised images"
    else:
        if origin.provenance is None:
            raise HptError(f"'{spec}' records no preprocessing (not made by hpt): --with-preprocessing has none to add")
        prepared = from_provenance(origin.provenance)
        inputs = raw_input(prepared, raw_type, size, raw_bands)
        wrapped = RawInput(backbone.model, prepared, raw_type)
        exported = export_backbone(backbone, fmt, size, target, wrapped, inputs)
        chosen = f", bands {list(prepared.decoding.bands)}" if prepared.decoding.bands else ""
        window = prepared.decoding.window.describe()
        takes = (
            f"N x {size} x {size} x {inputs.example.shape[-1]} raw {raw_type} values ({window}{chosen}; rounded to "
            "8 bits and normalised inside)"
        )
    return [
        *said,
        f"wrote {exported.path}: {takes} -> N x {backbone.num_features} features; largest difference from PyTorch "
        f"{exported.max_difference:.1e} (features up to {exported.scale:.2f})",
    ]
