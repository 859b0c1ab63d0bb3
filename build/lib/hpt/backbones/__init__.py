"""Backbones: one contract (`Backbone`), a registry of families, and the torchvision and timm adapters."""

from hpt.backbones.contract import Backbone, batch_norms
from hpt.backbones.registry import create_backbone, family_names, is_backbone_name, split_name

__all__ = ["Backbone", "batch_norms", "create_backbone", "family_names", "is_backbone_name", "split_name"]
