"""Initialisation strategies: how a run's backbone is made from the base (DESIGN.md, transfer/).

A strategy (one file each) builds the backbone and decides which of its tensors train: `scratch`, `full`
(HPT), `bn-only` (HPT-BN). Two adaptations (one file each, after Ciga et al.) then change the copied weights
before training and compose with `full` and `bn-only`: `weight-scaling` and `filter-selection`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from hpt.backbones import Backbone
from hpt.config import ModelConfig, TransferConfig
from hpt.errors import HptError
from hpt.transfer.bn_only import init_bn_only, reestimate_batch_norm
from hpt.transfer.filter_selection import measure_responses, select_filters
from hpt.transfer.full import init_full
from hpt.transfer.scratch import init_scratch
from hpt.transfer.weight_scaling import scale_weights


@dataclass(frozen=True)
class Strategy:
    init: Callable[[ModelConfig], tuple[Backbone, dict[str, Any]]]
    needs_base: bool
    reestimate_batch_norm: bool = False
    """Recompute BN running statistics on the target after training (HPT-BN)."""


STRATEGIES: dict[str, Strategy] = {
    "scratch": Strategy(init_scratch, needs_base=False),
    "full": Strategy(init_full, needs_base=True),
    "bn-only": Strategy(init_bn_only, needs_base=True, reestimate_batch_norm=True),
}


def resolve_init(model: ModelConfig) -> str:
    """`full` when a base is given, `scratch` otherwise, unless the config says."""
    return model.init or ("full" if model.base else "scratch")


def check_strategy(model: ModelConfig, transfer: TransferConfig) -> Strategy:
    """Refuse combinations that make no sense, before any work."""
    name = resolve_init(model)
    strategy = STRATEGIES[name]
    if strategy.needs_base and not model.base:
        raise HptError(f"--init {name} needs a --base to start from")
    if not strategy.needs_base and (transfer.weight_scaling or transfer.filter_selection):
        raise HptError(f"weight scaling and filter selection change a copied base; --init {name} has none")
    return strategy


def init_backbone(model: ModelConfig) -> tuple[Backbone, dict[str, Any]]:
    return STRATEGIES[resolve_init(model)].init(model)


def adapt_backbone(backbone: Backbone, transfer: TransferConfig, target_batches: Callable[[], Iterable[torch.Tensor]],
                   seed: int) -> dict[str, Any]:
    """Filter selection (measured on the base as copied), then weight scaling; returns what was done."""
    record: dict[str, Any] = {}
    if transfer.filter_selection:
        responses = measure_responses(backbone, target_batches())
        record["filter_selection"] = select_filters(backbone, transfer.filter_selection, responses, seed)
    if transfer.weight_scaling:
        record["weight_scaling"] = scale_weights(backbone, transfer.weight_scaling, seed)
    return record


__all__ = ["STRATEGIES", "Strategy", "adapt_backbone", "check_strategy", "init_backbone", "reestimate_batch_norm",
           "resolve_init"]
