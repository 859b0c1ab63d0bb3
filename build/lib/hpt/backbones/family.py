"""What a family of backbones is to the registry (`registry.py`): a factory and a check that a name exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hpt.backbones.contract import Backbone


@dataclass(frozen=True)
class Family:
    create: Callable[[str, bool, int], Backbone]
    """(model name, pretrained, input channels) -> the backbone."""
    exists: Callable[[str], bool]
    examples: str
