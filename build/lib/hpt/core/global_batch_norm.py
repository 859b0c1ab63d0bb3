"""BatchNorm over the global batch (`train.sync_batch_norm`; which methods use it by default: `methods/`): every
process normalises with the statistics of all processes' samples, and gradients flow back through them, so a
BatchNorm layer under DDP computes what it computes in one process on the whole batch.

hpt's own, rather than `torch.nn.SyncBatchNorm`, for two reasons: torch's runs on GPUs only (the CPU tests of
multi-process runs need it too), and it replaces modules by a plain SyncBatchNorm, which would drop the
activation of timm's BatchNormAct2d. Here a layer keeps its module, its parameters and its state-dict keys; only
its class gains a forward that, in training mode under several processes, computes the statistics over all of
them (two passes: the global mean, then the global variance around it, in float32) and then applies what the
layer applies after normalising (timm's `drop` and `act`). In eval mode, or in one process, the layer's own
forward runs unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hpt.core.distributed import differentiable_sum, world_size


class GlobalStatistics:
    """Mixed in front of a BatchNorm class: training-mode statistics over every process's batch."""

    training: bool  # the BatchNorm's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)  # type: ignore[misc]
        y = global_batch_norm(self, x)  # type: ignore[arg-type]
        for after in ("drop", "act"):  # timm's BatchNormAct2d: normalise, then dropout, then the activation
            y = getattr(self, after, nn.Identity())(y)
        return y


def global_batch_norm(norm: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = [1, channels] + [1] * (x.dim() - 2)
    values = x.float()
    count = differentiable_sum(values.new_tensor([values.numel() // channels]))
    mean = differentiable_sum(values.sum(dims)) / count
    centred = values - mean.view(shape)
    var = differentiable_sum((centred * centred).sum(dims)) / count  # biased, as BatchNorm normalises
    tracked = norm.num_batches_tracked
    if (
        norm.track_running_stats
        and norm.running_mean is not None
        and norm.running_var is not None
        and tracked is not None
    ):
        with torch.no_grad():
            tracked.add_(1)
            factor = 1.0 / float(tracked) if norm.momentum is None else norm.momentum
            unbiased = var * count / (count - 1).clamp_min(1)
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), factor)
            norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), factor)
    y = centred * torch.rsqrt(var + norm.eps).view(shape)
    if norm.affine:
        y = y * norm.weight.view(shape) + norm.bias.view(shape)
    return y.to(x.dtype)


_CLASSES: dict[type, type] = {}


def synchronise_batch_norm(model: nn.Module) -> int:
    """Give every BatchNorm in `model` global statistics (in place); returns how many layers were changed."""
    changed = 0
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not isinstance(module, GlobalStatistics):
            cls = type(module)
            if cls not in _CLASSES:
                _CLASSES[cls] = type(f"Global{cls.__name__}", (GlobalStatistics, cls), {"__module__": __name__})
            module.__class__ = _CLASSES[cls]
            changed += 1
    return changed
