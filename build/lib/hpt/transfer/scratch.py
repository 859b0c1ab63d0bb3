"""`scratch`: random initialisation, the target-only baseline of HPT's comparisons.

The architecture comes from `--backbone`, else from the base (its hub name, hpt provenance, or for a foreign
file its keys) so that a scratch run is directly comparable to the HPT run from that base; no base weights
are loaded. Without either: ResNet-50.
"""

from __future__ import annotations

from hpt.backbones import Backbone, create_backbone
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import find_architecture
from hpt.config import ModelConfig

DEFAULT_BACKBONE = "torchvision:resnet50"


def init_scratch(model: ModelConfig, in_chans: int = 3) -> tuple[Backbone, Origin]:
    name = model.backbone or (find_architecture(model.base) if model.base else DEFAULT_BACKBONE)
    backbone = create_backbone(name, pretrained=False, in_chans=in_chans)
    return backbone, Origin.scratch(backbone.name)
