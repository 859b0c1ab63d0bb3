"""The small contract every self-supervised method meets; methods are composed, not inherited into.

A method owns its backbone, heads and any state (queues, target networks) and turns a batch of views into
a loss. The training loop needs only three more facts from it, kept here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hpt.backbones import Backbone


class SSLMethod(nn.Module):
    backbone: Backbone

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        """The loss for one batch of views (each N x 3 x H x W)."""
        raise NotImplementedError

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) modules that the loop updates by EMA after each optimiser step."""
        return []

    momentum: tuple[float, float] = (0.0, 0.0)
    """Start and end of the EMA momentum schedule (cosine), when `momentum_pairs` is not empty."""

    def views(self, view: Callable) -> Callable:
        """Wrap one view transform into what `forward` expects from each image (e.g. two views)."""
        raise NotImplementedError
