"""timm models, built headless (`num_classes=0`) so they return pooled features.

Models that timm marks as taking one input size (ViTs, Swin: position embeddings, windows) are built with
`dynamic_img_size=True` where the model offers it, so they take the run's image size with their pretrained
embeddings resampled on the fly (the weights, and so the exported file, keep their native shapes); a model
without that option keeps its one size, which the run then checks.
"""

from __future__ import annotations

from typing import Any, cast

import timm

from hpt.backbones.contract import Backbone
from hpt.backbones.registry import Family


def _create(model: str, pretrained: bool, in_chans: int = 3) -> Backbone:
    # downloads when pretrained; timm adapts the first convolution's pretrained weights to `in_chans` itself
    options: dict[str, Any] = {"pretrained": pretrained, "num_classes": 0, "in_chans": in_chans}
    default: Any = timm.models.get_pretrained_cfg(model)
    fixed = bool(getattr(default, "fixed_input_size", False))
    if fixed:
        try:
            net = timm.create_model(model, dynamic_img_size=True, **options)
            fixed = False
        except TypeError:  # this model has no such option
            net = timm.create_model(model, **options)
    else:
        net = timm.create_model(model, **options)
    config: dict[str, Any] = getattr(net, "pretrained_cfg", {})  # timm's attributes are untyped nn.Module ones
    classifier = config.get("classifier", "classifier")
    size = int(config.get("input_size", (3, 224, 224))[-1]) if fixed else None
    return Backbone(f"timm:{model}", net, cast(int, net.num_features), f"{classifier}.", in_chans, size)


FAMILY = Family(create=_create, exists=timm.is_model, examples="tf_efficientnet_lite0, resnet50, vit_small_patch16_224")
