"""The one backbone contract every method, strategy and evaluator relies on."""

from __future__ import annotations

import torch
from torch import nn

from hpt.backbones.input_channels import first_conv


class Backbone(nn.Module):
    """A headless image encoder: `forward_features(images)` returns pooled features, `N x num_features`.

    `model` is the native torchvision/timm module without its classifier, so `native_state_dict()` uses
    the library's own key names: what hpt exports loads strictly into a fresh headless model of that
    library (`timm.create_model(name, num_classes=0)`, or a torchvision model whose `fc` is `Identity`).
    """

    def __init__(
        self, name: str, model: nn.Module, num_features: int, classifier_prefix: str, in_chans: int = 3
    ) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.num_features = num_features
        self.classifier_prefix = classifier_prefix
        """Key prefix of the native classifier, which foreign checkpoints carry and hpt drops."""
        self.in_chans = in_chans
        """Input channels: 3 for RGB; another number for multi-band images (`input_channels.py`)."""

    @property
    def input_conv_key(self) -> str:
        """The native key of the first convolution's weight: the one tensor that depends on `in_chans`."""
        return f"{first_conv(self.model)[0]}.weight"

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)  # N x num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)

    def native_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.model.state_dict().items()}

    def load_native_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state, strict=True)
