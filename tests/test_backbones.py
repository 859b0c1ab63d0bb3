import pytest
import timm
import torch
import torchvision

from hpt.backbones import create_backbone
from hpt.errors import HptError

# One entry per family and model kind hpt documents; every entry gets the same contract test for free.
REGISTERED = ["torchvision:resnet18", "torchvision:resnet50", "timm:tf_efficientnet_lite0", "timm:resnet18"]


@pytest.mark.parametrize("name", REGISTERED)
def test_every_backbone_meets_the_contract(name):
    backbone = create_backbone(name)
    features = backbone.forward_features(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, backbone.num_features)
    assert not any(k.startswith(backbone.classifier_prefix) for k in backbone.native_state_dict())


@pytest.mark.parametrize("name", REGISTERED)
def test_native_state_dict_loads_strictly_into_the_library_model(name):
    family, model = name.split(":")
    state = create_backbone(name).native_state_dict()
    if family == "timm":
        fresh = timm.create_model(model, num_classes=0)
    else:
        fresh = torchvision.models.get_model(model)
        fresh.fc = torch.nn.Identity()
    fresh.load_state_dict(state, strict=True)


@pytest.mark.parametrize(
    "name,message",
    [
        ("resnet18", "expected FAMILY:MODEL"),
        ("keras:resnet18", "unknown family 'keras'"),
        ("timm:not_a_model", "no such timm model"),
        ("torchvision:resnet19", "no such torchvision model"),
    ],
)
def test_unknown_names_fail_clearly(name, message):
    with pytest.raises(HptError, match=message):
        create_backbone(name)
