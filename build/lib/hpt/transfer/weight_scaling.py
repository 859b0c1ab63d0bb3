"""Weight scaling before a second pretraining (after Ciga, Xu & Martel, 2021, "Resource and data efficient
self supervised learning"). The paper's exact formula was not available; this is hpt's formulation.

For every conv/linear weight tensor W of the copied backbone, with sigma0 the standard deviation of that
layer's weight in a fresh initialisation of the same architecture (a fixed seed),
    W <- W * c,   c = FACTOR * sigma0 / std(W),
so `std(W) = FACTOR * sigma0` afterwards (FACTOR = 1 matches the initialisation's scale). A conv bias is scaled
by the same c. Where a BatchNorm follows the layer, its running mean is multiplied by c, its running variance by
c^2, and its weight gamma by sqrt(c^2 var + eps) / (c sqrt(var + eps)), the correction for BN's epsilon: then in
eval mode the network computes exactly the same function, and in train mode the same up to epsilon's share of the
batch variance. What changes is the layer's effective learning rate (lr / c^2 for a scale-invariant layer), which
is what lets a pretrained network move again. (Without the gamma correction, TF-ported models such as
EfficientNet-Lite, whose BN epsilon is 1e-3 and whose running variances are often small, change their output
by most of its norm.) A layer with no BatchNorm after it (e.g. a squeeze-excitation conv) does change its
function; the report lists those layers.
"""

from __future__ import annotations

import torch

from hpt.backbones import Backbone
from hpt.transfer.layers import fresh_modules, tensor_of, weighted_layers


@torch.no_grad()
def scale_weights(backbone: Backbone, factor: float, seed: int = 0) -> dict[str, object]:
    fresh = fresh_modules(backbone, seed)
    scales: dict[str, float] = {}
    unnormalised: list[str] = []
    for layer in weighted_layers(backbone.model):
        weight = layer.module.weight
        if weight.numel() < 2 or float(weight.std()) == 0.0:
            continue
        c = factor * float(tensor_of(fresh[layer.name], "weight").std()) / float(weight.std())
        weight.mul_(c)
        if layer.module.bias is not None:
            layer.module.bias.mul_(c)
        norm = layer.norm
        if norm is not None and norm.affine and norm.running_mean is not None and norm.running_var is not None:
            variance = norm.running_var
            norm.weight.mul_(((c * c * variance + norm.eps) / (variance + norm.eps)).sqrt() / c)
            norm.running_mean.mul_(c)
            norm.running_var.mul_(c * c)
        else:
            unnormalised.append(layer.name)
        scales[layer.name] = c
    return {"factor": factor, "layers": len(scales), "scales": scales, "function_changed": unnormalised}
