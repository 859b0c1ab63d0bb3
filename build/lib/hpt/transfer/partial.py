"""`partial`: continue from the base training only its last blocks (`model.trainable_blocks`, default 1) and what
follows them (the final convolution and normalisation of a CNN, the last norm of a ViT); everything before is
frozen. Frozen from the input on, the prefix builds no autograd graph, so a step's backward pass stops where the
trained blocks begin: cheaper steps, and the early layers' ImageNet features kept as they are.

A block is the library's own unit: timm's `group_matcher` (the groups its layer-wise learning-rate decay uses: an
EfficientNet's stages, a ResNet's layers, a ViT's blocks, the final layers joined to the last); for torchvision
models, the top-level layers that hold weights (a ResNet's `layer1`..`layer4`; a `features` sequence's items)."""

from __future__ import annotations

from torch import nn

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import load_backbone
from hpt.config import ModelConfig
from hpt.errors import HptError


def init_partial(model: ModelConfig, in_chans: int = 3) -> tuple[Backbone, Origin]:
    assert model.base is not None
    backbone, origin = load_backbone(model.base, model.backbone, role="base", in_chans=in_chans)
    trained = last_blocks(backbone, model.trainable_blocks or 1)
    for name, parameter in backbone.model.named_parameters():
        parameter.requires_grad_(name in trained)
    return backbone, origin


def last_blocks(backbone: Backbone, count: int) -> set[str]:
    """The parameter names of the backbone's last `count` blocks (none for 0); as many as it has after its stem
    (which always stays frozen) or more is one line."""
    groups = blocks(backbone.model)
    if count >= len(groups):
        raise HptError(
            f"model.trainable_blocks {count}: {backbone.name} has {len(groups) - 1} blocks after its stem; train "
            "fewer, or use --init full"
        )
    return {name for group in groups[len(groups) - count :] for name in group}


def blocks(model: nn.Module) -> list[list[str]]:
    """The model's parameter names by block, in forward order, the stem first (see the module's docstring)."""
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        matcher = getattr(model, "group_matcher")  # noqa: B009 - a method of timm's models, not of nn.Module
        grouped = group_parameters(model, matcher(coarse=True))
        return [list(names) for _, names in sorted(grouped.items())]
    layers = [(name, child) for name, child in model.named_children() if any(True for _ in child.parameters())]
    if len(layers) == 1:  # one sequence holds the network (torchvision's `features`): its items are the blocks
        prefix, only = layers[0]
        layers = [(f"{prefix}.{name}", child) for name, child in only.named_children()
                  if any(True for _ in child.parameters())]  # fmt: skip
    return [[f"{prefix}.{name}" for name, _ in layer.named_parameters()] for prefix, layer in layers]
