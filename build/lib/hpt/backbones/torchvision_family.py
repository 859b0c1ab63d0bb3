"""torchvision classification models, every family: the classifier's final layer is removed, the rest kept.

torchvision keeps a model's classifier in one of four attributes: `fc` (ResNet, RegNet, ShuffleNet,
GoogLeNet, Inception), `classifier` (EfficientNet, MobileNet, ConvNeXt, DenseNet, VGG, AlexNet, MNASNet,
SqueezeNet, MaxViT), `heads` (ViT) or `head` (Swin). Its last `Linear` (SqueezeNet: its last 1x1 `Conv2d`)
becomes an `Identity`, so the model returns the features that layer took: pre-logits layers before it
(VGG's, MobileNet v3's) stay part of the backbone, as in torchvision's own feature extraction. Dropout in the
classifier becomes an `Identity` too (no parameters, so the key names do not change): features are the same
in training and evaluation. Auxiliary classifiers (GoogLeNet, Inception v3) are removed.
"""

from __future__ import annotations

import torchvision
from torch import nn

from hpt.backbones.contract import Backbone
from hpt.backbones.family import Family
from hpt.backbones.hub_cache import check_available, torch_hub_weights
from hpt.backbones.input_channels import set_input_channels
from hpt.errors import HptError

CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def _exists(model: str) -> bool:
    return model in torchvision.models.list_models(module=torchvision.models)


def _create(model: str, pretrained: bool, in_chans: int = 3) -> Backbone:
    weights = torchvision.models.get_model_weights(model).DEFAULT if pretrained else None
    if weights is not None:  # not cached and no network: one line now, not after the download's timeout
        check_available(torch_hub_weights(f"torchvision:{model}", weights.url))
    # GoogLeNet and Inception v3 build auxiliary classifiers unless told not to (their pretrained builders
    # drop them themselves, and refuse the option)
    options = {"aux_logits": False} if weights is None and model in ("googlenet", "inception_v3") else {}
    net = torchvision.models.get_model(model, weights=weights, **options)  # downloads when pretrained
    classifier_key, num_features = remove_classifier(net, f"torchvision:{model}")
    set_input_channels(net, in_chans)
    # ViT's position embeddings and MaxViT's partitions are built for one image size
    fixed = (
        getattr(net, "image_size", None) if model.startswith("vit_") else (224 if model.startswith("maxvit") else None)
    )
    return Backbone(f"torchvision:{model}", net, num_features, f"{classifier_key}.", in_chans, fixed_input_size=fixed)


def remove_classifier(net: nn.Module, name: str) -> tuple[str, int]:
    """Replace `net`'s final classifying layer (and the classifier's dropout) by `Identity`; return the removed
    layer's key and the feature size it took."""
    for attribute in CLASSIFIER_ATTRIBUTES:
        container = getattr(net, attribute, None)
        if not isinstance(container, nn.Module):
            continue
        layers = [
            (key, m)
            for key, m in container.named_modules()
            if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
        ]
        if not layers:
            continue
        key, last = layers[-1]
        full_key = f"{attribute}.{key}" if key else attribute
        num_features = last.in_features if isinstance(last, nn.Linear) else last.in_channels
        _replace(net, full_key, nn.Identity())
        for dropout_key, module in list(container.named_modules()):
            if isinstance(module, nn.Dropout):
                _replace(net, f"{attribute}.{dropout_key}" if dropout_key else attribute, nn.Identity())
        return full_key, num_features
    raise HptError(f"backbone '{name}': found no classifier in {', '.join(CLASSIFIER_ATTRIBUTES)}")


def _replace(net: nn.Module, key: str, module: nn.Module) -> None:
    parent, _, attribute = key.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attribute, module)


FAMILY = Family(create=_create, exists=_exists, examples="resnet50, convnext_tiny, efficientnet_b0, vit_b_16, swin_t")
