"""SwAV.

Caron et al., NeurIPS 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments":
crops are projected (MLP with BN, 2048-128), L2-normalised and scored against K prototypes (normalised every
step); codes for the two large crops come from Sinkhorn-Knopp over the (global) batch, and each code is
predicted from every other crop (swapped prediction). Multi-crop: 2 large crops (scale 0.14-1) and N small
ones (scale 0.05-0.14) whose size is scaled with the image size (96 px at 224). The prototypes get no gradient
for the first steps (SwAV freezes them for the first epoch), and an optional queue of past large-crop
embeddings enlarges the Sinkhorn batch when batches are small.

Across processes Sinkhorn normalises over the global batch (and every process's queue), and, as in SwAV's
code, each process queues its own slice: `queue_size / processes` embeddings each, so the Sinkhorn batch is
the one a single process would have.

Deviations: SGD with momentum instead of LARS by default (`optim.name: lars` gives it); "first epoch" is given in
steps (`freeze_prototypes_steps`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hpt.backbones import Backbone
from hpt.config import SwAVConfig
from hpt.core.distributed import world_size
from hpt.data.views import LARGE_CROPS, MultiView, multi_crop, small_crop_size
from hpt.heads import ProjectionMLP
from hpt.heads.prototypes import Prototypes
from hpt.losses.swav import sinkhorn, swapped_prediction_loss
from hpt.methods.base import MethodRecord, SSLMethod, StepOutput, ViewFactory, frozen_throughout
from hpt.methods.crops import encode_crops


class SwAV(SSLMethod):
    queue: torch.Tensor
    queued: torch.Tensor

    def __init__(self, backbone: Backbone, config: SwAVConfig, image_size: int, steps: int | None = None) -> None:
        """`steps`: the run's, for the console's note when the prototypes would stay frozen throughout."""
        super().__init__()
        self.config = config
        self.steps = steps
        self.small_size = small_crop_size(image_size, config.small_crop_ratio)
        self.backbone = backbone
        self.head = ProjectionMLP(backbone.num_features, config.hidden_dim, config.dim, batch_norm=True)
        self.prototypes = Prototypes(config.dim, config.prototypes)
        self.queue_size = config.queue_size // world_size()  # this process's share
        self.register_buffer("queue", torch.zeros(LARGE_CROPS, self.queue_size, config.dim))
        self.register_buffer("queued", torch.zeros((), dtype=torch.long))

    def notes(self) -> list[str]:
        frozen = self.config.freeze_prototypes_steps
        return frozen_throughout("SwAV's prototypes", "swav.freeze_prototypes_steps", frozen, self.steps)

    def views(self, make_view: ViewFactory) -> MultiView:
        return multi_crop(make_view, self.config.small_crops, self.small_size, self.config.crop_split)

    def forward(self, views):
        self.prototypes.normalize_()
        batch = views[0].shape[0]
        embeddings = F.normalize(self.head(encode_crops(self.backbone, views)), dim=1)  # (2+N)B x dim
        frozen = self.step < self.config.freeze_prototypes_steps
        scores = self.prototypes(embeddings, frozen=frozen).split(batch)  # (2+N) x [B x K]

        use_queue = (  # with a queue, `int(self.queued)` is a host synchronisation per step
            self.queue_size > 0 and self.step >= self.config.queue_start_step and int(self.queued) >= self.queue_size
        )
        codes = []
        for i in range(LARGE_CROPS):
            crop_scores = scores[i].detach()
            if use_queue:
                crop_scores = torch.cat([self.queue[i] @ self.prototypes.weight.detach().T, crop_scores])
            codes.append(sinkhorn(crop_scores, self.config.epsilon, self.config.sinkhorn_iterations)[-batch:])
        if self.queue_size > 0:
            self._enqueue(embeddings[: LARGE_CROPS * batch].detach().view(LARGE_CROPS, batch, -1))
        loss = swapped_prediction_loss(list(scores), codes, self.config.temperature)
        return StepOutput(loss, embeddings[:batch].detach())

    @torch.no_grad()
    def _enqueue(self, embeddings: torch.Tensor) -> None:
        """Newest first: shift the queue by the batch and write the batch's large-crop embeddings in front."""
        batch = min(embeddings.shape[1], self.queue_size)
        self.queue[:, batch:] = self.queue[:, :-batch].clone()
        self.queue[:, :batch] = embeddings[:, :batch]
        self.queued.add_(batch)


RECORD = MethodRecord(
    "swav",
    SwAVConfig,
    lambda backbone, config, _stats: SwAV(backbone, config.swav, config.data.image_size, config.train.steps),
    unused_parameters=True,  # the prototypes get no gradient while frozen
)
