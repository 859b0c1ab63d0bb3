"""Initialisation strategies: how a run's backbone is made from the base (DESIGN.md, transfer/).

Each strategy is one file and one function `(config) -> (Backbone, origin record)`, registered by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hpt.backbones import Backbone
from hpt.config import ModelConfig
from hpt.errors import HptError
from hpt.transfer.full import init_full
from hpt.transfer.scratch import init_scratch

Strategy = Callable[[ModelConfig], tuple[Backbone, dict[str, Any]]]

STRATEGIES: dict[str, Strategy] = {"full": init_full, "scratch": init_scratch}


def resolve_init(model: ModelConfig) -> str:
    """`full` when a base is given, `scratch` otherwise, unless the config says."""
    return model.init or ("full" if model.base else "scratch")


def init_backbone(model: ModelConfig) -> tuple[Backbone, dict[str, Any]]:
    name = resolve_init(model)
    if name != "scratch" and not model.base:
        raise HptError(f"--init {name} needs a --base to start from")
    return STRATEGIES[name](model)


__all__ = ["STRATEGIES", "init_backbone", "resolve_init"]
