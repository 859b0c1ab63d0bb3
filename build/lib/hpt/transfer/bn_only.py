"""`bn-only` (HPT-BN): copy the base backbone and train only its BatchNorm affine parameters (and the head).

Reed et al., WACV 2022, Sec. 4 ("HPT-BN"): only the BN layers' parameters are updated during the target
stage. Here `requires_grad` is set when the backbone is built, before any Fabric/DDP wrapping (the original
code enabled BN gradients after wrapping, so under DDP they were not synchronised). The running statistics are
re-estimated on the target: they follow the target batches while training in train mode, and after training
they are recomputed exactly (a cumulative average over target images) so the exported backbone normalises with
the target's statistics, not the last batches'.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from hpt.backbones import Backbone, batch_norms
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import load_backbone
from hpt.config import ModelConfig
from hpt.core.interrupt import check as check_interrupt
from hpt.errors import HptError
from hpt.transfer.norm_only import norm_layers


def init_bn_only(model: ModelConfig, in_chans: int = 3) -> tuple[Backbone, Origin]:
    assert model.base is not None
    backbone, origin = load_backbone(model.base, model.backbone, role="base", in_chans=in_chans)
    if not batch_norms(backbone):
        kinds = sorted({type(layer).__name__ for _, layer in norm_layers(backbone)}) or ["none"]
        raise HptError(
            f"--init bn-only: {backbone.name} has no BatchNorm layer (its normalisation: {', '.join(kinds)}), so "
            "nothing in it would train; --init norm-only trains the affine parameters of its normalisation layers"
        )
    freeze_all_but_batch_norm(backbone)
    return backbone, origin


def freeze_all_but_batch_norm(backbone: Backbone) -> None:
    backbone.requires_grad_(False)
    for _, norm in batch_norms(backbone):
        if norm.affine:
            norm.weight.requires_grad_(True)
            norm.bias.requires_grad_(True)


@torch.no_grad()
def reestimate_batch_norm(backbone: Backbone, batches: Iterable[torch.Tensor], device: torch.device | str) -> int:
    """Recompute every BN's running mean/var as the plain average over `batches`; returns images seen."""
    norms = [norm for _, norm in batch_norms(backbone) if norm.track_running_stats]
    saved = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch counts equally
    was_training = backbone.training
    backbone.train()
    seen = 0
    for images in batches:
        check_interrupt()  # a stop signal is honoured between batches: the next attempt re-estimates from a reset
        backbone(images.to(device))
        seen += images.shape[0]
    for norm, momentum in zip(norms, saved):
        norm.momentum = momentum
    backbone.train(was_training)
    return seen
