"""Self-supervised methods, registered by name; each composed from a backbone, heads and a pure loss."""

from __future__ import annotations

from collections.abc import Callable

from hpt.backbones import Backbone
from hpt.config import PretrainConfig
from hpt.methods.base import SSLMethod
from hpt.methods.mocov2 import MoCoV2

METHODS: dict[str, Callable[[Backbone, PretrainConfig], SSLMethod]] = {
    "mocov2": lambda backbone, config: MoCoV2(backbone, config.mocov2),
}


def build_method(name: str, backbone: Backbone, config: PretrainConfig) -> SSLMethod:
    return METHODS[name](backbone, config)


__all__ = ["METHODS", "SSLMethod", "build_method"]
