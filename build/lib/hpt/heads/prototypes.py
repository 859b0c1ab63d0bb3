"""SwAV's prototypes: a bias-free linear layer whose K rows are kept on the unit sphere."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Prototypes(nn.Module):
    def __init__(self, dim: int, count: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(F.normalize(torch.randn(count, dim), dim=1))

    @torch.no_grad()
    def normalize_(self) -> None:
        """SwAV normalises the prototypes before every step (Sec. 3.1)."""
        self.weight.copy_(F.normalize(self.weight, dim=1))

    def forward(self, embeddings: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """B x dim unit embeddings -> B x K scores; `frozen` lets no gradient reach the prototypes."""
        weight = self.weight.detach() if frozen else self.weight
        return embeddings @ weight.T
