"""Registry of backbone families, addressed as `family:model`, e.g. `torchvision:resnet50`, `timm:resnet18`.

A family is a factory `(model_name, pretrained, in_chans) -> Backbone` plus a check that a model name exists, so that a
misspelt name fails before anything is downloaded or built.
"""

from __future__ import annotations

from hpt.backbones import module_family, timm_family, torchvision_family
from hpt.backbones.contract import Backbone
from hpt.backbones.family import Family
from hpt.errors import HptError

_FAMILIES: dict[str, Family] = {}


def register_family(name: str, family: Family) -> None:
    _FAMILIES[name] = family


def family_names() -> list[str]:
    return sorted(_FAMILIES)


def split_name(name: str) -> tuple[str, str]:
    family, sep, model = name.partition(":")
    if not sep or not model:
        raise HptError(f"backbone '{name}': expected FAMILY:MODEL with FAMILY one of {', '.join(family_names())}")
    return family, model


def is_backbone_name(name: str) -> bool:
    """True when `name` looks like `family:model` for a registered family (whether or not the model exists)."""
    family, sep, model = name.partition(":")
    return bool(sep and model) and family in _FAMILIES


def create_backbone(name: str, pretrained: bool = False, in_chans: int = 3) -> Backbone:
    """Build a backbone by registry name; `pretrained` downloads the family's hub weights (network);
    `in_chans`: input channels (3 for RGB; another number adapts the first convolution, `input_channels.py`)."""
    family_name, model = split_name(name)
    family = _FAMILIES.get(family_name)
    if family is None:
        raise HptError(f"backbone '{name}': unknown family '{family_name}' (known: {', '.join(family_names())})")
    if not family.exists(model):
        raise HptError(f"backbone '{name}': no such {family_name} model (e.g. {family.examples})")
    return family.create(model, pretrained, in_chans)


register_family("torchvision", torchvision_family.FAMILY)
register_family("timm", timm_family.FAMILY)
register_family("module", module_family.FAMILY)
