"""MoCo v2, with the HPT code's defaults.

Chen, Fan, Girshick & He, 2020, "Improved Baselines with Momentum Contrastive Learning" (MoCo v2: MLP head,
stronger augmentation, cosine lr) on He et al., CVPR 2020 (MoCo: momentum key encoder, queue of keys).
HPT (Reed et al., WACV 2022) uses it with queue 65536, dim 128, momentum 0.999, temperature 0.2.

Across processes the key encoder's batch is shuffled between them (MoCo's shuffling BN,
`distributed.shuffled_forward`) unless BatchNorm statistics are global (`train.sync_batch_norm`), and every
process enqueues the keys of the global batch.

On one process there is no batch to shuffle across; while the backbone's BatchNorm statistics train, MoCo's
single-GPU demo is followed instead: both encoders encode the batch in slices (`mocov2.bn_splits`), the key
encoder a shuffled batch, as that many processes would (`distributed.shuffled_forward`); its effect on short
runs from scratch is measured in benchmarks/moco_scratch.py.

Deviation: the queue need not be a multiple of the batch size.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hpt.backbones import Backbone, batch_norms
from hpt.config import MoCoV2Config, PretrainConfig
from hpt.core.distributed import gather, shuffled_forward, split_forward, world_size
from hpt.data.stats import PixelStats
from hpt.data.views import MultiView, two_views
from hpt.heads import ProjectionMLP
from hpt.losses import infonce_in_batch, infonce_loss
from hpt.methods.base import MethodRecord, SSLMethod, StepOutput, ViewFactory
from hpt.methods.queue import KeyQueue

IMAGES_PER_SPLIT = 64
"""`bn_splits` by default: one slice per this many images (the MoCo demo's 512 in 8), at least 2."""


def default_splits(batch_size: int) -> int:
    """Slices of a one-process batch for MoCo's emulated shuffling BN: one per 64 images, at least 2."""
    return max(2, batch_size // IMAGES_PER_SPLIT)


class MoCoV2(SSLMethod):
    def __init__(
        self,
        backbone: Backbone,
        config: MoCoV2Config,
        shuffle_keys: bool = True,
        seed: int = 0,
        splits: int | None = 1,
    ) -> None:
        """`splits`: slices for emulated shuffling BN on one process (`mocov2.bn_splits`); None: by the batch
        that comes, `default_splits`."""
        super().__init__()
        self.shuffle_keys, self.seed, self.splits = shuffle_keys, seed, splits
        self.temperature = config.temperature
        self.momentum = (config.momentum, config.momentum)
        self.backbone = backbone
        self.head = ProjectionMLP(backbone.num_features, config.hidden_dim or backbone.num_features, config.dim)
        self.momentum_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.momentum_head = copy.deepcopy(self.head).requires_grad_(False)
        self.queue = KeyQueue(config.dim, config.queue_size)
        self.first_negatives = config.first_negatives
        if config.first_negatives == "random":
            self.queue.fill_random()

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.momentum_backbone), (self.head, self.momentum_head)]

    def views(self, make_view: ViewFactory) -> MultiView:
        return two_views(make_view())

    def _keys(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.momentum_head(self.momentum_backbone(images)), dim=1)

    def _splits(self, batch: int) -> int:
        """Slices of this batch for emulated shuffling BN: on one process, while the backbone's BatchNorm layers
        use (and learn) batch statistics, and never a slice under 2 images (BatchNorm needs two values per
        channel); else 1."""
        if not self.shuffle_keys or world_size() > 1:
            return 1
        if not any(norm.training for _, norm in batch_norms(self.backbone)):
            return 1
        wanted = self.splits if self.splits is not None else default_splits(batch)
        return max(1, min(wanted, batch // 2))

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        query_images, key_images = views
        splits = self._splits(query_images.shape[0])
        query = F.normalize(self.head(split_forward(self.backbone, query_images, splits)), dim=1)  # N x C
        with torch.no_grad():
            if self.shuffle_keys:
                key = shuffled_forward(self._keys, key_images, self.seed, self.step, splits=splits)  # N x C
            else:
                key = self._keys(key_images)
        negatives = self.queue.negatives()
        if negatives.shape[1] == 0 and self.first_negatives == "in-batch":  # the first step: no keys queued yet
            loss = infonce_in_batch(query, key, self.temperature)
        else:
            loss = infonce_loss(query, key, negatives, self.temperature)
        self.queue.push(gather(key))  # every process enqueues the keys of the global batch
        return StepOutput(loss, query.detach())


def _build(backbone: Backbone, config: PretrainConfig, _stats: PixelStats) -> MoCoV2:
    shuffle_keys = not RECORD.syncs_batch_norm(config.train)
    return MoCoV2(backbone, config.mocov2, shuffle_keys, seed=config.train.seed, splits=config.mocov2.bn_splits)


RECORD = MethodRecord("mocov2", MoCoV2Config, _build, shuffles_keys=True)
