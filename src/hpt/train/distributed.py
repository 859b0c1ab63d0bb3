"""The one place methods reach across processes. On a single process every helper is the identity.

Methods that need the global batch (SimCLR's negatives, SwAV's Sinkhorn, MoCo's enqueued keys) call these, so
the same method code is right on a laptop and under DDP.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (N x ...) from every process along dim 0, keeping gradients to the local part."""
    if world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over processes in place (no gradient); returns it."""
    if world_size() > 1:
        dist.all_reduce(tensor)
    return tensor
