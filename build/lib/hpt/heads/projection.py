"""The MLP projection head of MoCo v2 / SimCLR: Linear -> [BN] -> ReLU -> ... -> Linear (DINO's: GELU)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

RELU: Callable[[], nn.Module] = partial(nn.ReLU, inplace=True)


class ProjectionMLP(nn.Module):
    """`in_dim -> hidden_dim (x num_layers-1) -> out_dim`; MoCo v2 uses 2 layers without BN (2048-2048-128).

    Freshly initialised (PyTorch's Kaiming-uniform default for `nn.Linear`) every time a method is built:
    HPT copies only the backbone from the base and always starts a new head.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = False,
        activation: Callable[[], nn.Module] = RELU,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(activation())
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)  # N x out_dim
