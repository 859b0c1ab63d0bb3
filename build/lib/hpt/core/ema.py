"""The one EMA helper: target <- m * target + (1 - m) * online, for each (online, target) module pair."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """Parameters only, as MoCo's `_momentum_update_key_encoder`; the target's BN statistics stay its own."""
    for online, target in pairs:
        target_params: list[torch.Tensor] = list(target.parameters())
        online_params: list[torch.Tensor] = list(online.parameters())
        torch._foreach_mul_(target_params, momentum)
        torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
