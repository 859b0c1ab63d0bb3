"""Filter selection before a second pretraining (after Ciga, Xu & Martel, 2021). The paper's exact procedure
was not available; this is hpt's formulation.

1. Measure: run a sample of the *target* images through the copied backbone in eval mode (the base's own
   normalisation) and record, for each conv filter, its mean post-activation response: the mean over images
   and positions of ReLU(BN(conv(x))) for a conv followed by BatchNorm (timm's BatchNormAct2d already applies
   its activation; ReLU of a ReLU/ReLU6 output changes nothing), and of |conv(x)| for a conv without one.
2. Select: in every conv layer, the round(FRACTION x filters) filters with the smallest response, i.e. those
   the target domain uses least (ties broken by index).
3. Re-initialise: those filters' weights (and bias), and the matching BatchNorm channels' weight, bias and
   running statistics, take the values of a fresh initialisation of the same architecture (fixed seed). All
   other filters are left bitwise as they were.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from hpt.backbones import Backbone
from hpt.transfer.layers import Layer, fresh_modules, tensor_of, weighted_layers


@torch.no_grad()
def measure_responses(
    backbone: Backbone, batches: Iterable[torch.Tensor], device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Mean post-activation response of every conv filter: {layer name: tensor[out_channels]}."""
    layers = [layer for layer in weighted_layers(backbone.model) if isinstance(layer.module, nn.Conv2d)]
    totals = {layer.name: torch.zeros(int(layer.module.weight.shape[0]), dtype=torch.float64) for layer in layers}
    counts = dict.fromkeys(totals, 0)

    def record(name: str, after_norm: bool):
        def hook(_module, _inputs, output):
            activation = output.relu() if after_norm else output.abs()  # N x C x H x W
            totals[name] += activation.double().mean(dim=(2, 3)).sum(dim=0).cpu()
            counts[name] += output.shape[0]

        return hook

    handles = [
        (layer.norm or layer.module).register_forward_hook(record(layer.name, layer.norm is not None))
        for layer in layers
    ]
    was_training = backbone.training
    backbone.eval()
    try:
        for images in batches:
            backbone(images.to(device))
    finally:
        for handle in handles:
            handle.remove()
        backbone.train(was_training)
    return {name: totals[name] / max(counts[name], 1) for name in totals}


@torch.no_grad()
def select_filters(
    backbone: Backbone, fraction: float, responses: dict[str, torch.Tensor], seed: int = 0
) -> dict[str, object]:
    """Re-initialise the least-used `fraction` of filters per conv layer; returns {layer: chosen indices}."""
    fresh = fresh_modules(backbone, seed)
    chosen: dict[str, list[int]] = {}
    for layer in weighted_layers(backbone.model):
        if layer.name not in responses:
            continue
        response = responses[layer.name]
        count = round(fraction * response.numel())
        if count == 0:
            continue
        order = torch.sort(response, stable=True).indices
        indices = order[:count].sort().values
        _reinitialise(layer, fresh, indices)
        chosen[layer.name] = indices.tolist()
    return {"fraction": fraction, "layers": len(chosen), "reinitialised": chosen}


def _reinitialise(layer: Layer, fresh: dict[str, nn.Module], indices: torch.Tensor) -> None:
    source = fresh[layer.name]
    layer.module.weight[indices] = tensor_of(source, "weight")[indices].to(layer.module.weight.dtype)
    if layer.module.bias is not None:
        layer.module.bias[indices] = tensor_of(source, "bias")[indices]
    if layer.norm is not None and layer.norm_name is not None:
        fresh_norm = fresh[layer.norm_name]
        for attribute in ("weight", "bias", "running_mean", "running_var"):
            target = getattr(layer.norm, attribute, None)
            if target is not None:
                target[indices] = getattr(fresh_norm, attribute)[indices]
