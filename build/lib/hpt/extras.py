"""The optional parts of hpt (`pip install 'hpt[NAME]'`) and the one line that names a missing one.

`pip install hpt` is the core job: screen the images, pretrain, evaluate with intervals, export safetensors. Every
other feature needs its extra, and asking for it without the extra is one line naming the command that installs it
(an `HptError`: exit code 2, nothing written). `[all]` installs every extra below.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from hpt.errors import HptError

EXTRAS: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard",),
    "plots": ("matplotlib",),
    "bands": ("tifffile",),
    "dicom": ("pydicom",),
    "export": ("onnx", "onnxscript", "onnxruntime"),
    "lora": ("peft",),
    "mlflow": ("mlflow", "pytorch_lightning"),
    "wandb": ("wandb", "pytorch_lightning"),
}
"""Each extra of pyproject.toml, by the modules it brings that hpt imports."""


def installed(extra: str) -> bool:
    """Whether every module of `extra` can be imported (looked up, not imported: cheap)."""
    return not _missing(extra)


def require(extra: str, feature: str) -> None:
    """`HptError` naming `feature` and the install command when `extra` is missing; nothing otherwise."""
    if missing := _missing(extra):
        raise HptError(f"{feature} needs {', '.join(missing)}, not installed here: pip install 'hpt[{extra}]'")


def _missing(extra: str) -> list[str]:
    missing = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a finder that refuses it; a module entry without a spec
            found = False
        if not found:
            missing.append(module)
    return missing


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the file-only Agg backend (the `plots` extra); call `require("plots", ...)` first
    where a missing one must be said."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
