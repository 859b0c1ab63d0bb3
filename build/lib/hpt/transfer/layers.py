"""Which layers a transfer strategy touches: conv/linear layers, each with the BatchNorm that follows it.

Pairing is by registration order, which in torchvision ResNets and timm's convolutional networks is the order
of the forward pass: a BatchNorm that comes next after a conv, with no other conv in between and as many
channels as the conv has outputs, normalises that conv. Also a fresh, deterministic initialisation of the same
architecture, the reference both weight scaling and filter selection need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hpt.backbones import Backbone, create_backbone


@dataclass(frozen=True)
class Layer:
    name: str
    module: nn.Conv2d | nn.Linear
    norm: _BatchNorm | None
    norm_name: str | None


def _outputs(module: nn.Conv2d | nn.Linear) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def weighted_layers(model: nn.Module) -> list[Layer]:
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, _BatchNorm))]
    layers = []
    for i, (name, module) in enumerate(modules):
        if isinstance(module, _BatchNorm):
            continue
        following = modules[i + 1] if i + 1 < len(modules) else (None, None)
        norm_name, norm = following
        if isinstance(norm, _BatchNorm) and norm.num_features == _outputs(module):
            layers.append(Layer(name, module, norm, norm_name))
        else:
            layers.append(Layer(name, module, None, None))
    return layers


def fresh_modules(backbone: Backbone, seed: int) -> dict[str, nn.Module]:
    """The modules of a newly initialised backbone of the same architecture, the same for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = create_backbone(backbone.name, pretrained=False, in_chans=backbone.in_chans)
    return dict(fresh.model.named_modules())


def tensor_of(module: nn.Module, name: str) -> torch.Tensor:
    """`module.NAME` (a parameter or buffer), typed as the tensor it is."""
    value = getattr(module, name)
    assert isinstance(value, torch.Tensor), f"{type(module).__name__}.{name} is not a tensor"
    return value


def trainable_share(backbone: Backbone) -> tuple[int, int]:
    """(trainable parameters, all parameters) of the backbone."""
    counts = [(p.numel(), p.requires_grad) for p in backbone.model.parameters()]
    return sum(n for n, trains in counts if trains), sum(n for n, _ in counts)
