"""A backbone for N-band images from an RGB one: its first convolution takes N input channels.

The rule is timm's (`timm.models.adapt_input_conv`, used by `timm.create_model(..., in_chans=N)`): one band
gets the sum of the RGB filters; N bands get the RGB filters repeated in order (R, G, B, R, ...) and scaled by
3 / N, so that an image whose bands all equal one grey image gives the same first-layer response as that grey
image in RGB. torchvision models get the same rule here (their first convolution is replaced); a base's
3-channel first-layer weights are adapted the same way when they are loaded (`checkpoints/layouts.py`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """O x 3 x k x k -> O x in_chans x k x k."""
    if weight.shape[1] == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeated = weight.repeat(1, math.ceil(in_chans / weight.shape[1]), 1, 1)[:, :in_chans]
    return repeated * (weight.shape[1] / in_chans)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no convolution")


def set_input_channels(model: nn.Module, in_chans: int) -> None:
    """Replace `model`'s first convolution by one with `in_chans` inputs, its weights adapted."""
    name, conv = first_conv(model)
    if conv.in_channels == in_chans:
        return
    new = copy.deepcopy(conv)  # the same kernel, stride, padding, groups; only the input channels change
    new.in_channels = in_chans
    new.weight = nn.Parameter(adapt_input_conv(conv.weight.detach(), in_chans).clone())
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attribute, new)
