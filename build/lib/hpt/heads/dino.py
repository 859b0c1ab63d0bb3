"""DINO's projection head: an MLP to a bottleneck, L2-normalised, then a weight-normalised linear layer.

Caron et al., ICCV 2021, and its code's `DINOHead`: Linear-GELU-Linear-GELU-Linear (in -> 2048 -> 2048 -> 256;
BatchNorm after the hidden layers only when asked, as its `use_bn_in_head`), weights from a truncated normal
(std 0.02), biases 0; the 256-d output is L2-normalised and scored by a bias-free linear layer of K rows under
weight normalisation with its gains fixed at 1 (the reference's `norm_last_layer`): each row is used as a unit
vector, so the K outputs are cosine similarities.
The rows keep PyTorch's default Linear initialisation, as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hpt.heads.projection import ProjectionMLP


class DINOHead(nn.Module):
    def __init__(
        self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int, batch_norm: bool = False
    ) -> None:
        """`batch_norm`: BatchNorm after each hidden layer (the reference's `use_bn_in_head`, off by default)."""
        super().__init__()
        self.mlp = ProjectionMLP(
            in_dim, hidden_dim, bottleneck_dim, num_layers=3, batch_norm=batch_norm, activation=nn.GELU
        )
        for layer in self.mlp.modules():
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        self.last_layer = nn.Parameter(nn.Linear(bottleneck_dim, out_dim, bias=False).weight.detach())

    def bottleneck(self, features: torch.Tensor) -> torch.Tensor:
        """N x bottleneck_dim unit vectors: what the last layer scores."""
        return F.normalize(self.mlp(features), dim=1)

    def forward(self, features: torch.Tensor, frozen_last_layer: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(N x out_dim logits, the N x bottleneck_dim unit vectors they score); `frozen_last_layer` lets no
        gradient reach the last layer (DINO freezes it for the first epoch)."""
        unit = self.bottleneck(features)
        rows = self.last_layer.detach() if frozen_last_layer else self.last_layer
        return unit @ F.normalize(rows, dim=1).T, unit
