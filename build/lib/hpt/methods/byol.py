"""BYOL.

Grill et al., NeurIPS 2020, "Bootstrap Your Own Latent": an online network (backbone, projector, predictor)
regresses the target network's projection of the other view; the target (backbone, projector) is an EMA of the
online one with momentum rising from 0.996 to 1 on a cosine schedule; the loss is symmetric over the two views
and has no negatives. Projector and predictor: Linear(4096) - BN - ReLU - Linear(256).

Deviation: SGD with momentum instead of LARS by default, as for SimCLR (`optim.name: lars` gives it).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hpt.backbones import Backbone
from hpt.config import BYOLConfig
from hpt.data.views import MultiView, two_views
from hpt.heads import ProjectionMLP
from hpt.losses.byol import byol_loss
from hpt.methods.base import MethodRecord, SSLMethod, StepOutput, ViewFactory


class BYOL(SSLMethod):
    def __init__(self, backbone: Backbone, config: BYOLConfig) -> None:
        super().__init__()
        self.momentum = (config.momentum_start, config.momentum_end)
        self.backbone = backbone
        self.projector = ProjectionMLP(backbone.num_features, config.hidden_dim, config.dim, batch_norm=True)
        self.predictor = ProjectionMLP(config.dim, config.hidden_dim, config.dim, batch_norm=True)
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.target_backbone), (self.projector, self.target_projector)]

    def views(self, make_view: ViewFactory) -> MultiView:
        return two_views(make_view())

    def forward(self, views):
        first, second = views
        projected_1, projected_2 = (self.projector(self.backbone(v)) for v in (first, second))
        online_1, online_2 = self.predictor(projected_1), self.predictor(projected_2)
        with torch.no_grad():
            target_1, target_2 = (self.target_projector(self.target_backbone(v)) for v in (first, second))
        return StepOutput(byol_loss(online_1, target_2) + byol_loss(online_2, target_1), projected_1.detach())


RECORD = MethodRecord("byol", BYOLConfig, lambda backbone, config, _stats: BYOL(backbone, config.byol))
