"""A timm-style `config.json`: the architecture, the feature size and the preprocessing the run used.

`timm.create_model("local-dir:RUN", pretrained=True)` (and `hf-hub:` once the folder is uploaded) builds the
headless model from it and loads its weights, and `timm.data.resolve_data_config(model=model)` then gives the
run's own mean, standard deviation, input size and interpolation instead of ImageNet's. For torchvision and
user modules the same file records the preprocessing; the architecture is named as hpt names it.
"""

from __future__ import annotations

from typing import Any

import timm

from hpt.backbones import split_name
from hpt.checkpoints.provenance import FileProvenance


def timm_config(provenance: FileProvenance, num_features: int) -> dict[str, Any]:
    backbone, data = str(provenance.backbone), provenance.data
    family, model = split_name(backbone)
    channels, size = data.channels, provenance.image_size
    pretrained_cfg: dict[str, Any] = {
        "input_size": [channels, size, size],
        # hpt's evaluation view: the shorter side resized (bilinear) to the size, then a centre crop of it
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": data.mean,
        "std": data.std,
        "num_classes": 0,
    }
    if family == "timm":
        default: Any = timm.models.get_pretrained_cfg(model)
        if default is not None:
            pretrained_cfg |= {"first_conv": default.first_conv, "classifier": default.classifier}
    return {
        "architecture": model if family == "timm" else backbone,
        "num_classes": 0,
        "num_features": num_features,
        "model_args": {"num_classes": 0, "in_chans": channels},
        "pretrained_cfg": pretrained_cfg,
        # not timm's: how files became pixels before the mean and std above (high-bit window, bands)
        "hpt": {
            "version": provenance.hpt_version,
            "backbone": backbone,
            "decoding": {
                **({"intensity": data.intensity} if data.intensity else {}),
                "channels": channels,
                **({"bands": data.bands} if data.bands else {}),
            },
        },
    }
