"""MoCo v2, with the HPT code's defaults.

Chen, Fan, Girshick & He, 2020, "Improved Baselines with Momentum Contrastive Learning" (MoCo v2: MLP head,
stronger augmentation, cosine lr) on He et al., CVPR 2020 (MoCo: momentum key encoder, queue of keys).
HPT (Reed et al., WACV 2022) uses it with queue 65536, dim 128, momentum 0.999, temperature 0.2.

Across processes the key encoder's batch is shuffled between them (MoCo's shuffling BN,
`distributed.shuffled_forward`) unless BatchNorm statistics are global (`train.sync_batch_norm`), and every
process enqueues the keys of the global batch.

Deviations: a single process has no batch to shuffle across, so there the key encoder sees the same batch
composition as the query encoder; the queue need not be a multiple of the batch size.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hpt.backbones import Backbone
from hpt.config import MoCoV2Config
from hpt.core.distributed import gather, shuffled_forward
from hpt.data.views import MultiView, two_views
from hpt.heads import ProjectionMLP
from hpt.losses import infonce_loss
from hpt.methods.base import SSLMethod, StepOutput, ViewFactory
from hpt.methods.queue import KeyQueue


class MoCoV2(SSLMethod):
    def __init__(self, backbone: Backbone, config: MoCoV2Config, shuffle_keys: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.shuffle_keys, self.seed, self.step = shuffle_keys, seed, 0
        self.temperature = config.temperature
        self.momentum = (config.momentum, config.momentum)
        self.backbone = backbone
        self.head = ProjectionMLP(backbone.num_features, config.hidden_dim or backbone.num_features, config.dim)
        self.momentum_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.momentum_head = copy.deepcopy(self.head).requires_grad_(False)
        self.queue = KeyQueue(config.dim, config.queue_size)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.momentum_backbone), (self.head, self.momentum_head)]

    def views(self, make_view: ViewFactory) -> MultiView:
        return two_views(make_view())

    def on_step(self, step: int) -> None:
        self.step = step

    def _keys(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.momentum_head(self.momentum_backbone(images)), dim=1)

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        query_images, key_images = views
        query = F.normalize(self.head(self.backbone(query_images)), dim=1)  # N x C
        with torch.no_grad():
            if self.shuffle_keys:
                key = shuffled_forward(self._keys, key_images, self.seed, self.step)  # N x C
            else:
                key = self._keys(key_images)
        loss = infonce_loss(query, key, self.queue.keys.clone(), self.temperature)
        self.queue.push(gather(key))  # every process enqueues the keys of the global batch
        return StepOutput(loss, query.detach())
