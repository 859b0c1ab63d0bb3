"""Which architecture a foreign checkpoint holds, found from its keys and shapes alone.

A file given without `--backbone` is compared with every torchvision classification model and a list of
common timm models, each built without memory (on PyTorch's `meta` device) and read through the same layouts
and audit as any load (`layouts.py`). The one architecture whose tensors match the file exactly, no key
missing, mis-shaped or unexpected, is used, and the load report says so. Some architectures share every key
and shape (torchvision's and timm's ResNet-50): when all that match compute the same features from the file's
weights (checked on one probe image), the first is used and the others named; otherwise hpt lists them and
asks for `--backbone`.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator

import torch
import torchvision
from torch import nn

from hpt.backbones import Backbone, create_backbone
from hpt.checkpoints.layouts import State, load_into, to_native
from hpt.errors import HptError

COMMON_TIMM = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet50d", "resnext50_32x4d", "wide_resnet50_2",
    "resnetv2_50", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "tf_efficientnet_b0", "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2",
    "tf_efficientnet_lite3", "tf_efficientnet_lite4", "efficientnetv2_rw_s", "mobilenetv2_100",
    "mobilenetv3_large_100", "convnext_atto", "convnext_tiny", "convnext_small", "convnext_base", "densenet121",
    "regnety_016", "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
    "vit_small_patch14_dinov2", "deit_small_patch16_224", "swin_tiny_patch4_window7_224",
)  # fmt: skip
"""The timm models a file is compared with (timm has over a thousand; these are the common starting points)."""


def candidates() -> list[str]:
    return [f"torchvision:{m}" for m in torchvision.models.list_models(module=torchvision.models)] + [
        f"timm:{m}" for m in COMMON_TIMM
    ]


def identify(state: State, what: str, in_chans: int = 3) -> tuple[str, str]:
    """The architecture `state` holds, and a sentence that says how it was found; a one-line `HptError` when
    none or several different ones match."""
    names = candidates()
    with warnings.catch_warnings():  # building candidates: torchvision's notes on their initialisation are noise here
        warnings.simplefilter("ignore")
        fits = [name for name in names if _fits_exactly(state, name, in_chans)]
    if not fits:
        raise HptError(
            f"{what}: its keys and shapes fit none of the {len(names)} architectures hpt compares with "
            "(torchvision's, common timm models); name it with --backbone FAMILY:MODEL"
        )
    if len(fits) == 1:
        return fits[0], f"identified from its keys and shapes as {fits[0]}, the only fit of {len(names)} architectures"
    if _same_features(state, fits, what, in_chans):
        return fits[0], (
            f"identified from its keys and shapes as {fits[0]}; {', '.join(fits[1:])} fit too and compute the "
            "same features from these weights"
        )
    raise HptError(
        f"{what}: its keys and shapes fit several architectures that compute different features "
        f"({', '.join(fits)}); name one with --backbone"
    )


def _fits_exactly(state: State, name: str, in_chans: int) -> bool:
    try:
        backbone = _shapes_only(name, in_chans)
        _, report = to_native(state, backbone)
    except HptError:
        return False
    return report.ok and not report.unexpected


@functools.cache
def _shapes_only(name: str, in_chans: int) -> Backbone:
    """`name` built with its parameters and buffers on the meta device: the shapes without the memory. Built
    once a process and only read after: the 113 candidates took 15-19 s to build and keep ~95 MB of Python
    objects (measured 2026-12-02, 2 CPU cores); a second file to identify, as `hpt select` over several foreign
    files brings, is then compared in under half a second."""
    try:
        with torch.device("meta"):
            return create_backbone(name, in_chans=in_chans)
    except NotImplementedError:  # a model that computes its widths with tensors (RegNet): built layer by layer
        with _parameters_on_meta():
            return create_backbone(name, in_chans=in_chans)


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Each parameter and buffer moved to the meta device as its layer registers it."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer(module: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        register_buffer(module, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter = parameter  # type: ignore[method-assign,assignment]
    nn.Module.register_buffer = buffer  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def _same_features(state: State, names: list[str], what: str, in_chans: int) -> bool:
    """The file's weights in each architecture give the same features for one probe image, relative to their
    size (float32 sums in another order differ by ~1e-6; other padding or activations by far more than 1e-3;
    relative, because a randomly initialised network's features can be tiny)."""
    outputs = []
    for name in names:
        backbone = create_backbone(name, in_chans=in_chans)
        load_into(backbone, state, what)
        size = backbone.fixed_input_size or 64
        probe = torch.rand(1, in_chans, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            outputs.append(backbone.eval()(probe))
    first = outputs[0]
    return all(o.shape == first.shape and (o - first).norm() <= 1e-3 * first.norm() for o in outputs)
