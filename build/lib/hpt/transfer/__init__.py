"""Initialisation strategies: how a run's backbone is made from the base (docs/strategies.md).

A strategy (one file each) builds the backbone and decides which of its tensors train: `scratch`, `full`
(HPT), `bn-only` (HPT-BN), `norm-only` (HPT-BN for LayerNorm/GroupNorm networks), `partial` (the last blocks),
`lora` (adapters beside the frozen base, merged on export).
Two adaptations (one file each, after Ciga et al.) then change the copied weights before training and compose
with the strategies that copy a base: `weight-scaling` and `filter-selection`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.config import ModelConfig, TransferConfig
from hpt.errors import HptError
from hpt.transfer.bn_only import init_bn_only, reestimate_batch_norm
from hpt.transfer.filter_selection import measure_responses, select_filters
from hpt.transfer.full import init_full
from hpt.transfer.lora import init_lora
from hpt.transfer.norm_only import init_norm_only
from hpt.transfer.partial import init_partial
from hpt.transfer.scratch import init_scratch
from hpt.transfer.weight_scaling import scale_weights


@dataclass(frozen=True)
class Strategy:
    name: str
    init: Callable[[ModelConfig, int], tuple[Backbone, Origin]]
    """(the model config, the images' channels) -> the starting backbone and where it came from."""
    needs_base: bool
    reestimate_batch_norm: bool = False
    """Recompute BN running statistics on the target after training (HPT-BN)."""
    estimate_batch_norm_first: bool = False
    """Estimate BN running statistics on the target before step 0 (from scratch: a random network's are mean 0,
    variance 1, so in evaluation mode its BatchNorm is close to the identity, a network that training never
    starts from, and that can score far above it: 57% against 14% linear on MNIST-5k, see the moco_scratch
    study). `transfer.estimate_batch_norm_first: false` turns it off."""


STRATEGIES: dict[str, Strategy] = {
    "scratch": Strategy("scratch", init_scratch, needs_base=False, estimate_batch_norm_first=True),
    "full": Strategy("full", init_full, needs_base=True),
    "bn-only": Strategy("bn-only", init_bn_only, needs_base=True, reestimate_batch_norm=True),
    "norm-only": Strategy("norm-only", init_norm_only, needs_base=True),
    "partial": Strategy("partial", init_partial, needs_base=True),
    "lora": Strategy("lora", init_lora, needs_base=True),
}


def check_strategy(model: ModelConfig, transfer: TransferConfig) -> Strategy:
    """The run's strategy: `full` when a base is given, `scratch` otherwise, unless the config says.
    Combinations that make no sense are refused here, before any work."""
    name = model.init or ("full" if model.base else "scratch")
    strategy = STRATEGIES[name]
    if strategy.needs_base and not model.base:
        raise HptError(f"--init {name} needs a --base to start from")
    if not strategy.needs_base and (transfer.weight_scaling or transfer.filter_selection):
        raise HptError(f"weight scaling and filter selection change a copied base; --init {name} has none")
    if name == "lora" and (transfer.weight_scaling or transfer.filter_selection):
        raise HptError(
            "weight scaling and filter selection retrain a copied base's layers; --init lora keeps them "
            "frozen and trains adapters beside them: use --init full"
        )
    return strategy


def adapt_backbone(
    backbone: Backbone, transfer: TransferConfig, target_batches: Callable[[], Iterable[torch.Tensor]], seed: int
) -> dict[str, Any]:
    """Filter selection (measured on the base as copied), then weight scaling; returns what was done."""
    record: dict[str, Any] = {}
    if transfer.filter_selection:
        responses = measure_responses(backbone, target_batches())
        record["filter_selection"] = select_filters(backbone, transfer.filter_selection, responses, seed)
    if transfer.weight_scaling:
        record["weight_scaling"] = scale_weights(backbone, transfer.weight_scaling, seed)
    return record


__all__ = ["STRATEGIES", "Strategy", "adapt_backbone", "check_strategy", "reestimate_batch_norm"]
