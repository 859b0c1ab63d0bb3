"""`norm-only`: HPT-BN's idea carried to networks that do not normalise with BatchNorm (hpt's extension).

HPT-BN (Reed et al., WACV 2022, Sec. 4) trains only the BatchNorm affine parameters of the copied base (and the
new head). ViTs, Swins and ConvNeXts normalise with LayerNorm, some CNNs with GroupNorm; `bn-only` would train
nothing in their backbones, so it refuses them and names this strategy, which trains the affine parameters of
every normalisation layer (BatchNorm, LayerNorm, GroupNorm) and the head; every other backbone tensor stays
exactly as the base's.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import load_backbone
from hpt.config import ModelConfig
from hpt.errors import HptError

NORMALISATIONS = (_BatchNorm, nn.LayerNorm, nn.GroupNorm)
"""timm's LayerNorm2d and BatchNormAct2d are subclasses of these."""


def norm_layers(backbone: Backbone) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in backbone.model.named_modules() if isinstance(module, NORMALISATIONS)]


def init_norm_only(model: ModelConfig, in_chans: int = 3) -> tuple[Backbone, Origin]:
    assert model.base is not None
    backbone, origin = load_backbone(model.base, model.backbone, role="base", in_chans=in_chans)
    trainable = [
        parameter
        for _, layer in norm_layers(backbone)
        for parameter in (getattr(layer, "weight", None), getattr(layer, "bias", None))
        if isinstance(parameter, nn.Parameter)
    ]
    if not trainable:
        raise HptError(f"--init norm-only: {backbone.name} has no normalisation layer with affine parameters to train")
    backbone.requires_grad_(False)
    for parameter in trainable:
        parameter.requires_grad_(True)
    return backbone, origin
