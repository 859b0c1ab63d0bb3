"""The one parameter-group helper: no weight decay on normalisation weights and biases (nor LARS's trust ratio,
`lars_exclude`; other optimisers ignore the key). `decays` marks the group whose weight decay a schedule moves
(`optim.weight_decay_end`).

Deviation: MoCo's and HPT's code decay every parameter; excluding 1-D tensors is the later standard
(e.g. BYOL, DINO) and matters more when few steps move a pretrained network.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in module.parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars_exclude": False, "decays": True},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True, "decays": False},
    ]
