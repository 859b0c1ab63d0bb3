"""LoRA adapters on a backbone's layers, through peft, and the backbone's weights with them merged in.

peft (`pip install 'hpt[lora]'`) wraps each adapted `nn.Linear`/`nn.Conv2d` in its own layer: the original
module becomes `NAME.base_layer` and the adapter adds `NAME.lora_A.default` and `NAME.lora_B.default`, whose
product, scaled by alpha / rank, is added to the layer's output. B starts at zero, so an adapted backbone
computes exactly what the base did until the first step. What hpt writes for others (best.safetensors,
backbone.safetensors, every export format) is the merged network under the library's own key names: each
adapted weight plus peft's own `get_delta_weight`, an ordinary model that loads strictly into
`timm.create_model(name, num_classes=0)`. A run's checkpoint keeps the adapters as they are, for `--resume`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hpt.errors import HptError
from hpt.extras import require

ADAPTER = "default"
"""peft's name for the one adapter hpt adds."""
MARKER = ".lora_A."
"""In a state dict's keys: an adapter not yet merged."""


def peft_module() -> Any:
    require("lora", "--init lora")
    import peft

    return peft


def adaptable(module: nn.Module) -> bool:
    """A layer whose adapter computes in the layer's own geometry: every linear, and every ungrouped convolution
    that is either a plain `nn.Conv2d` or 1x1 (timm's `Conv2dSame` pads in its forward, which a 3x3 adapter
    beside it would not; peft cannot merge a grouped or depthwise convolution's adapter)."""
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and (type(module) is nn.Conv2d or module.kernel_size == (1, 1))
    )


def add_adapters(model: nn.Module, targets: Sequence[str], rank: int, alpha: float) -> None:
    """Put a LoRA adapter on each named module of `model` (in place); only the adapters train afterwards."""
    peft = peft_module()
    modules = dict(model.named_modules())
    for name in targets:
        if name not in modules or not adaptable(modules[name]):
            raise HptError(f"LoRA target '{name}' is not a linear or ungrouped convolution of the backbone")
    # One regular expression of the exact names: peft matches a list by name suffix too ('conv1' would also
    # adapt 'layer1.0.conv1'), a string in full only.
    exactly = "|".join(re.escape(name) for name in targets)
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=f"(?:{exactly})")
    peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    assert sorted(name for name, _ in adapted_layers(model)) == sorted(targets), "peft adapted other layers"


def adapted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules of `model` that carry an adapter (none where peft was never imported)."""
    if "peft" not in sys.modules:
        return []
    from peft.tuners.lora import LoraLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, LoraLayer)]  # type: ignore[misc]


def adapter_parameters(model: nn.Module) -> int:
    """How many parameters the adapters of `model` hold."""
    return sum(parameter.numel() for name, parameter in model.named_parameters() if ".lora_" in name)


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` (detached) with every adapter merged into its layer's weight, under the layer's own
    names: the state dict as it is where nothing is adapted."""
    layers = dict(adapted_layers(model))
    merged: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        owner = next((name for name in layers if key.startswith(f"{name}.")), None)
        if owner is None:
            merged[key] = value.detach()
        elif key.startswith(inner := f"{owner}.base_layer."):  # the adapters' own keys are left out
            merged[f"{owner}.{key[len(inner) :]}"] = value.detach()
    for name, layer in layers.items():
        weight = merged[f"{name}.weight"]
        delta = layer.get_delta_weight(ADAPTER)  # type: ignore[operator]
        merged[f"{name}.weight"] = weight + delta.to(weight.dtype)
    return merged
