"""Multi-crop's forward pass: one backbone pass per run of crops of the same size (SwAV's and DINO's
`MultiCropWrapper`), so that crops of one size share a batch and BatchNorm sees them together."""

from __future__ import annotations

import torch
from torch import nn


def encode_crops(backbone: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
    """The backbone's features of every view, in order: (sum of the views' batches) x F."""
    groups: list[list[torch.Tensor]] = []
    for view in views:
        if groups and groups[-1][0].shape[-2:] == view.shape[-2:]:
            groups[-1].append(view)
        else:
            groups.append([view])
    return torch.cat([backbone(torch.cat(group)) for group in groups])
