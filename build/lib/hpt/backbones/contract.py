"""The one backbone contract every method, strategy and evaluator relies on."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hpt.backbones.adapters import merged_state_dict
from hpt.backbones.input_channels import first_conv
from hpt.errors import HptError


class Backbone(nn.Module):
    """A headless image encoder: `forward_features(images)` returns pooled features, `N x num_features`.

    `model` is the native torchvision/timm module without its classifier, so `native_state_dict()` uses
    the library's own key names: what hpt exports loads strictly into a fresh headless model of that
    library (`timm.create_model(name, num_classes=0)`, or a torchvision model whose `fc` is `Identity`).
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        num_features: int,
        classifier_prefix: str | None,
        in_chans: int = 3,
        fixed_input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.num_features = num_features
        self.classifier_prefix = classifier_prefix
        """Key prefix of the native classifier, which foreign checkpoints carry and hpt drops (None: none)."""
        self.in_chans = in_chans
        """Input channels: 3 for RGB; another number for multi-band images (`input_channels.py`)."""
        self.fixed_input_size = fixed_input_size
        """The one image size the model takes (ViTs' position embeddings), or None for any size."""

    def is_classifier_key(self, key: str) -> bool:
        return self.classifier_prefix is not None and key.startswith(self.classifier_prefix)

    @property
    def input_conv_key(self) -> str:
        """The native key of the first convolution's weight: the one tensor that depends on `in_chans`."""
        return f"{first_conv(self.model)[0]}.weight"

    def check_image_size(self, image_size: int, where: str) -> None:
        """Refuse, in one line, an image size the model cannot take."""
        if self.fixed_input_size is not None and image_size != self.fixed_input_size:
            raise HptError(
                f"{self.name} takes {self.fixed_input_size}-px images only (its position embeddings or windows are "
                f"built for that size) but {where} is {image_size}: set it to {self.fixed_input_size}, or use a model "
                "that takes any size (a CNN, or a timm ViT, which resamples its embeddings)"
            )

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)  # N x num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)

    def native_state_dict(self) -> dict[str, torch.Tensor]:
        """The library's own keys and tensors; LoRA adapters (`--init lora`) merged into their layers' weights."""
        return merged_state_dict(self.model)

    def load_native_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(with_module_versions(self.model, state), strict=True)


def with_module_versions(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with `model`'s per-module format versions attached, as `state_dict()` attaches them: files hold
    tensors only, and some modules (torchvision's MNASNet) refuse a state without its version."""
    versioned = OrderedDict(state)
    versioned._metadata = getattr(model.state_dict(), "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return versioned


def batch_norms(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """Every BatchNorm of `model`, timm's BatchNormAct2d included (a subclass), by name: what strategies
    freeze or train, what MoCo emulates shuffling for."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BatchNorm)]
