"""timm models, built headless (`num_classes=0`) so they return pooled features.

Models that timm marks as taking one input size (ViTs, Swin: position embeddings, windows) are built with
`dynamic_img_size=True` where the model offers it, so they take the run's image size with their pretrained
embeddings resampled on the fly (the weights, and so the exported file, keep their native shapes); a model
without that option keeps its one size, which the run then checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import timm

from hpt.backbones.contract import Backbone
from hpt.backbones.family import Family
from hpt.backbones.hub_cache import HubWeights, check_available, torch_hub_weights


def _create(model: str, pretrained: bool, in_chans: int = 3) -> Backbone:
    # downloads when pretrained; timm adapts the first convolution's pretrained weights to `in_chans` itself
    options: dict[str, Any] = {"pretrained": pretrained, "num_classes": 0, "in_chans": in_chans}
    default: Any = timm.models.get_pretrained_cfg(model)
    if pretrained and (weights := _hub_weights(model, default)) is not None:
        check_available(weights)  # not cached and no network: one line now, not after a minute of retries
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


def _hub_weights(model: str, config: Any) -> HubWeights | None:
    """Where timm reads `model`'s pretrained weights from: the Hugging Face hub when the model names a repo
    there (timm's first choice), else the file torch.hub downloads from its URL."""
    if config is None:
        return None
    name = f"timm:{model}"
    if getattr(config, "hf_hub_id", None):
        from huggingface_hub import constants, try_to_load_from_cache

        files = [config.hf_hub_filename] if config.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        cached = any(isinstance(try_to_load_from_cache(config.hf_hub_id, file), str) for file in files)
        return HubWeights(name, cached, Path(constants.HF_HUB_CACHE), "huggingface.co", "HF_HUB_OFFLINE")
    if getattr(config, "url", None):
        return torch_hub_weights(name, config.url)
    return None


FAMILY = Family(create=_create, exists=timm.is_model, examples="tf_efficientnet_lite0, resnet50, vit_small_patch16_224")
