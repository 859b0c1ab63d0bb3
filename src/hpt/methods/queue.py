"""MoCo's dictionary: a first-in-first-out queue of keys held in explicit buffers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KeyQueue(nn.Module):
    """`keys` is C x K (as in MoCo), initialised with random unit vectors; `ptr` is the next slot.

    Unlike MoCo's code this does not require K to be a multiple of the batch size: writes wrap around.
    """

    keys: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[1]

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Enqueue N x C keys, overwriting the oldest (dequeue and enqueue in one write)."""
        keys = keys[-self.size :]
        n = keys.shape[0]
        slots = (self.ptr + torch.arange(n, device=keys.device)) % self.size
        self.keys[:, slots] = keys.T.to(self.keys.dtype)
        self.ptr.copy_((self.ptr + n) % self.size)
