"""timm models, built headless (`num_classes=0`) so they return pooled features."""

from __future__ import annotations

from typing import Any, cast

import timm

from hpt.backbones.contract import Backbone
from hpt.backbones.registry import Family


def _create(model: str, pretrained: bool, in_chans: int = 3) -> Backbone:
    # downloads when pretrained; timm adapts the first convolution's pretrained weights to `in_chans` itself
    net = timm.create_model(model, pretrained=pretrained, num_classes=0, in_chans=in_chans)
    config: dict[str, Any] = getattr(net, "pretrained_cfg", {})  # timm's attributes are untyped nn.Module ones
    classifier = config.get("classifier", "classifier")
    return Backbone(f"timm:{model}", net, cast(int, net.num_features), f"{classifier}.", in_chans)


FAMILY = Family(create=_create, exists=timm.is_model, examples="tf_efficientnet_lite0, resnet50, vit_small_patch16_224")
