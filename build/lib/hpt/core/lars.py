"""LARS: SGD with momentum whose step for each weight tensor is scaled by a trust ratio (You, Gitman & Ginsburg,
2017), the optimiser SimCLR and BYOL train with at large batches.

For a weight w with gradient g: d = g + weight_decay * w, scaled by trust_coefficient * |w| / |d| (1 where
either norm is 0), then the momentum buffer b = momentum * b + d and w -= lr * b. Parameter groups marked
`lars_exclude` (biases and normalisation weights, `param_groups`) take plain momentum-SGD steps without
decay, as both papers' code does. This is the update of the Barlow Twins reference code (facebookresearch/
barlowtwins, `LARS`), whose filters exclude the same 1-D tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

TRUST_COEFFICIENT = 0.001
"""eta of the papers (SimCLR, BYOL and their reference code all use 1e-3)."""


class LARS(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = TRUST_COEFFICIENT,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue  # no gradient this step (SwAV's prototypes while frozen): left as it is
                update = param.grad
                if not group["lars_exclude"]:
                    update = update.add(param, alpha=group["weight_decay"])
                    weight_norm, update_norm = torch.linalg.vector_norm(param), torch.linalg.vector_norm(update)
                    # on the device, no host synchronisation: torch.where instead of an `if` on the norms
                    trust = torch.where(
                        (weight_norm > 0) & (update_norm > 0),
                        group["trust_coefficient"] * weight_norm / update_norm,
                        torch.ones_like(weight_norm),
                    )
                    update = update.mul(trust)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(update)
                param.add_(buffer, alpha=-group["lr"])
        return loss
