"""`full` (HPT): copy every backbone tensor from the base and train everything.

Reed et al., WACV 2022, "Self-Supervised Pretraining Improves Self-Supervised Pretraining", Sec. 3: the
base model's backbone initialises the next stage; the projection head and MoCo queue start anew (the method
builds them fresh).
"""

from __future__ import annotations

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import load_backbone
from hpt.config import ModelConfig


def init_full(model: ModelConfig, in_chans: int = 3) -> tuple[Backbone, Origin]:
    assert model.base is not None
    return load_backbone(model.base, model.backbone, role="base", in_chans=in_chans)
