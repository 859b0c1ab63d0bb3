"""SimCLR.

Chen, Kornblith, Norouzi & Hinton, ICML 2020, "A Simple Framework for Contrastive Learning of Visual
Representations": two views, a 2-layer MLP projection head with BatchNorm (hidden = feature width, out 128),
NT-Xent over the 2N views of the global batch (negatives of all processes, gradients flowing through
`gather`).

Deviations: SGD with momentum instead of LARS by default (`optim.name: lars` gives the paper's; LARS matters
at batch 4096, not at the small batches of continued pretraining), and temperature 0.1 by default (the paper's
best for small batches in its Table 5; its large-batch default is 0.5).
"""

from __future__ import annotations

from hpt.backbones import Backbone
from hpt.config import SimCLRConfig
from hpt.core.distributed import gather
from hpt.data.views import MultiView, two_views
from hpt.heads import ProjectionMLP
from hpt.losses.nt_xent import nt_xent_loss
from hpt.methods.base import MethodRecord, SSLMethod, StepOutput, ViewFactory


class SimCLR(SSLMethod):
    def __init__(self, backbone: Backbone, config: SimCLRConfig) -> None:
        super().__init__()
        self.temperature = config.temperature
        self.backbone = backbone
        self.head = ProjectionMLP(
            backbone.num_features, config.hidden_dim or backbone.num_features, config.dim, batch_norm=True
        )

    def views(self, make_view: ViewFactory) -> MultiView:
        return two_views(make_view())

    def forward(self, views):
        first, second = (self.head(self.backbone(v)) for v in views)  # N x dim each
        return StepOutput(nt_xent_loss(gather(first), gather(second), self.temperature), first.detach())


RECORD = MethodRecord("simclr", SimCLRConfig, lambda backbone, config, _stats: SimCLR(backbone, config.simclr))
