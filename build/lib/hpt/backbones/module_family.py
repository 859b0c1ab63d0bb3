"""Any `nn.Module` a user built, continued through the Python API: `register_backbone(name, module)` makes it
the backbone `module:NAME`, which configs, checkpoints and `--resume` then name like any other.

The module must map a batch of images (N x C x H x W) to features (N x F); F is found by one forward pass
at registration. Its own `state_dict()` is what hpt loads, trains and exports, key for key. As a base
(`model.base: module:NAME`) it starts from the weights it holds when registered; `--init scratch` re-draws
them (`reset_parameters` of every layer that has one).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hpt.backbones.contract import Backbone
from hpt.backbones.family import Family
from hpt.backbones.input_channels import set_input_channels
from hpt.errors import HptError


@dataclass(frozen=True)
class _Registered:
    make: Callable[[], nn.Module]
    num_features: int
    image_size: int


_MODULES: dict[str, _Registered] = {}


def register_backbone(name: str, module: nn.Module | Callable[[], nn.Module], image_size: int = 224) -> str:
    """Register `module` (or a function that builds one) as the backbone `module:NAME`; returns that name.

    Any `nn.Module` that maps images to features (N x C x H x W -> N x F, or a feature map that is pooled)
    can then be pretrained, evaluated and exported like a timm or torchvision model. `image_size`: a size the
    module accepts, for the one forward pass that finds its feature size.

    Example::

        import torch
        from hpt import register_backbone
        pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        name = register_backbone("tiny", torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), pool), image_size=32)
        assert name == "module:tiny"
    """
    if not name or ":" in name:
        raise HptError(f"backbone name '{name}': expected a non-empty name without ':'")
    if isinstance(module, nn.Module):
        snapshot = copy.deepcopy(module)  # the weights as registered, whatever happens to `module` later
        make: Callable[[], nn.Module] = lambda: copy.deepcopy(snapshot)  # noqa: E731
    else:
        make = module
    num_features = _feature_size(make(), image_size, f"module:{name}")
    _MODULES[name] = _Registered(make, num_features, image_size)
    return f"module:{name}"


def _feature_size(net: nn.Module, image_size: int, name: str) -> int:
    was_training = net.training
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(2, 3, image_size, image_size))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module is their input's error
        raise HptError(
            f"backbone '{name}': a forward pass on 2 x 3 x {image_size} x {image_size} failed ({exc})"
        ) from None
    finally:
        net.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise HptError(
            f"backbone '{name}': must map N x C x H x W images to N x F features; it returned {shape} "
            "(pool and flatten at the end, and leave the classifier out)"
        )
    return int(out.shape[1])


def _create(model: str, pretrained: bool, in_chans: int = 3) -> Backbone:
    registered = _MODULES[model]
    net = registered.make()
    if not pretrained:
        for layer in net.modules():
            reset = getattr(layer, "reset_parameters", None)
            if callable(reset):
                reset()
    if in_chans != 3:
        set_input_channels(net, in_chans)
    return Backbone(f"module:{model}", net, registered.num_features, None, in_chans)


FAMILY = Family(
    create=_create,
    exists=lambda model: model in _MODULES,
    examples="a name given to hpt.register_backbone(name, module) in this process",
)
