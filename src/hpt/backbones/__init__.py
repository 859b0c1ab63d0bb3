"""Backbones: one contract (`Backbone`), a registry of families, and the torchvision and timm adapters."""

from hpt.backbones.contract import Backbone
from hpt.backbones.registry import create_backbone, family_names, is_backbone_name, split_name

__all__ = ["Backbone", "create_backbone", "family_names", "is_backbone_name", "split_name"]
