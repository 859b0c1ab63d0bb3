"""`lora`: continue from the base through low-rank adapters on its frozen layers (after ExPLoRA, Khanna et al.,
ICML 2025), optionally with its last blocks unfrozen (`model.trainable_blocks`; ExPLoRA's recipe unfreezes one or
two), and every normalisation layer's affine parameters training (as ExPLoRA trains a ViT's LayerNorms).

The adapters are peft's (`backbones/adapters.py`): rank `model.lora_rank` (default 8), scaled by
`model.lora_alpha / model.lora_rank` (default alpha: the rank, a scale of 1). They go on every linear and every
ungrouped convolution after the stem and outside the unfrozen blocks (a ViT's attention and MLP linears; a CNN's
pointwise and full convolutions; a depthwise convolution has too few weights to need one, and peft cannot merge
it), or on the modules `model.lora_targets` names (regular expressions matched against whole module names). The
base's own weights stay bitwise as they were; what the run exports has the adapters merged in.
"""

from __future__ import annotations

import re

from torch import nn

from hpt.backbones import Backbone
from hpt.backbones.adapters import adaptable, add_adapters
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import load_backbone
from hpt.config import ModelConfig
from hpt.errors import HptError
from hpt.transfer.norm_only import norm_layers
from hpt.transfer.partial import blocks, last_blocks

RANK = 8


def init_lora(model: ModelConfig, in_chans: int = 3) -> tuple[Backbone, Origin]:
    assert model.base is not None
    backbone, origin = load_backbone(model.base, model.backbone, role="base", in_chans=in_chans)
    trained = last_blocks(backbone, model.trainable_blocks or 0)
    after_stem = {name for group in blocks(backbone.model)[1:] for name in group}
    targets = lora_targets(backbone.model, model.lora_targets, after_stem)
    targets = [name for name in targets if f"{name}.weight" not in trained]
    if not targets:
        raise HptError(f"--init lora: no layer of {backbone.name} is left to adapt outside its unfrozen blocks")
    norms = {f"{name}.{leaf}" for name, _ in norm_layers(backbone) for leaf in ("weight", "bias")}
    rank = model.lora_rank or RANK
    add_adapters(backbone.model, targets, rank, model.lora_alpha or float(rank))
    for name, parameter in backbone.model.named_parameters():
        parameter.requires_grad_(".lora_" in name or name in trained or name in norms)
    return backbone, origin


def lora_targets(model: nn.Module, patterns: list[str] | None, after_stem: set[str]) -> list[str]:
    """The modules to adapt: those `patterns` match in full, or by default every adaptable layer whose weight is
    in `after_stem` (the parameter names of the blocks after the stem)."""
    layers = [(name, module) for name, module in model.named_modules() if adaptable(module)]
    if patterns is None:
        return [name for name, _ in layers if f"{name}.weight" in after_stem]
    chosen: list[str] = []
    for pattern in patterns:
        try:
            matched = [name for name, _ in layers if re.fullmatch(pattern, name)]
        except re.error as error:
            raise HptError(f"model.lora_targets: '{pattern}' is not a regular expression ({error})") from None
        if not matched:
            examples = ", ".join(name for name, _ in layers[:3])
            raise HptError(
                f"model.lora_targets: '{pattern}' matches no linear or ungrouped convolution of the backbone (its "
                f"names are like {examples})"
            )
        chosen += [name for name in matched if name not in chosen]
    return chosen
