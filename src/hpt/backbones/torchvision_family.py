"""torchvision classification models (ResNets and friends whose classifier is `fc`)."""

from __future__ import annotations

import torchvision
from torch import nn

from hpt.backbones.contract import Backbone
from hpt.backbones.input_channels import set_input_channels
from hpt.backbones.registry import Family
from hpt.errors import HptError


def _exists(model: str) -> bool:
    return model in torchvision.models.list_models(module=torchvision.models)


def _create(model: str, pretrained: bool, in_chans: int = 3) -> Backbone:
    weights = torchvision.models.get_model_weights(model).DEFAULT if pretrained else None
    net = torchvision.models.get_model(model, weights=weights)  # downloads when pretrained
    if not isinstance(getattr(net, "fc", None), nn.Linear):
        raise HptError(f"backbone 'torchvision:{model}': hpt supports torchvision models with an `fc` classifier")
    num_features = net.fc.in_features
    net.fc = nn.Identity()  # the one place the classifier is removed
    set_input_channels(net, in_chans)
    return Backbone(f"torchvision:{model}", net, num_features, "fc.", in_chans)


FAMILY = Family(create=_create, exists=_exists, examples="resnet18, resnet50, wide_resnet50_2")
