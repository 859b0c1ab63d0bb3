"""Self-supervised methods, registered by name; each composed from a backbone, heads and a pure loss."""

from __future__ import annotations

from collections.abc import Callable

from hpt.backbones import Backbone
from hpt.config import PretrainConfig
from hpt.methods.base import SSLMethod, StepOutput, ViewFactory
from hpt.methods.byol import BYOL
from hpt.methods.mocov2 import MoCoV2
from hpt.methods.simclr import SimCLR
from hpt.methods.swav import SwAV

SHUFFLES_INSTEAD = {"mocov2"}
"""Methods whose paper shuffles the batch across processes (MoCo's shuffling BN) instead of synchronising
BatchNorm."""


def syncs_batch_norm(config: PretrainConfig) -> bool:
    """`train.sync_batch_norm`, or by default: on, except for the methods that shuffle instead."""
    configured = config.train.sync_batch_norm
    return configured if configured is not None else config.method not in SHUFFLES_INSTEAD


METHODS: dict[str, Callable[[Backbone, PretrainConfig], SSLMethod]] = {
    "mocov2": lambda backbone, config: MoCoV2(
        backbone,
        config.mocov2,
        shuffle_keys=not syncs_batch_norm(config),
        seed=config.train.seed,
        splits=config.mocov2.bn_splits,
    ),
    "simclr": lambda backbone, config: SimCLR(backbone, config.simclr),
    "byol": lambda backbone, config: BYOL(backbone, config.byol),
    "swav": lambda backbone, config: SwAV(backbone, config.swav, config.data.image_size),
}


def build_method(name: str, backbone: Backbone, config: PretrainConfig) -> SSLMethod:
    return METHODS[name](backbone, config)


__all__ = ["METHODS", "SSLMethod", "StepOutput", "ViewFactory", "build_method", "syncs_batch_norm"]
