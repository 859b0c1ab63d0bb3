"""The one place methods reach across processes. On a single process every helper is the identity.

Methods that need the global batch (SimCLR's negatives, SwAV's Sinkhorn, MoCo's enqueued keys and shuffled
BatchNorm) call these, so the same method code is right on a laptop and under DDP. Every process holds an
equal, contiguous slice of the global batch, in rank order (`data/order.py`), so concatenating the slices of
all processes gives the batch a single process would have seen.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist

from hpt.core.seeds import derived_seed

# torch marks torch.distributed.nn.functional deprecated in favour of functional collectives, whose all-reduce
# carries no gradient; these differentiable collectives are the ones hpt needs.
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.", category=FutureWarning)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_first_process() -> bool:
    """Rank 0, also before the process group exists: from the variables the launchers set (Fabric's own:
    NODE_RANK and LOCAL_RANK; torchrun: RANK; SLURM: SLURM_PROCID). For work around runs, such as --auto's
    record of its pilots, that only one process may do."""
    if world_size() > 1:
        return dist.get_rank() == 0
    for variable in ("RANK", "SLURM_PROCID"):
        if variable in os.environ:
            return int(os.environ[variable]) == 0
    return int(os.environ.get("NODE_RANK", 0)) == 0 and int(os.environ.get("LOCAL_RANK", 0)) == 0


def batch_slice(global_batch: int, part: int, parts: int) -> slice:
    """Process `part`'s rows of a global batch: the `part`-th of `parts` equal, contiguous slices, in rank order."""
    share = global_batch // parts
    return slice(part * share, (part + 1) * share)


def leave_process_group() -> None:
    """End this process's part of a multi-process run cleanly, once, when its command has succeeded: wait until
    every process is done (nothing in flight), then destroy the process group, so that no gloo/NCCL thread is
    left running while the interpreter exits (which can abort a process that did its work). Not after a failure:
    another process may be inside a collective, and the launcher stops them all."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (N x ...) from every process along dim 0, keeping gradients to the local part.

    Backward sums every process's gradient for each slice, so with DDP's averaging the parameters get the
    gradient of the global loss."""
    if world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over processes in place (no gradient); returns it."""
    if world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def differentiable_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over processes, with gradients flowing back to every process's part."""
    if world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor)


@torch.no_grad()
def broadcast_from_first(tensors: list[torch.Tensor]) -> None:
    """Make every process's `tensors` rank 0's (in place)."""
    if world_size() > 1:
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def mean_over_processes(value: float, device: torch.device | str) -> float:
    """The mean of a number over processes: what a one-process run with the global batch would report."""
    if world_size() == 1:
        return value
    return float(all_reduce_sum(torch.tensor([value], dtype=torch.float64, device=device))) / world_size()


@torch.no_grad()
def gather_uneven(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every process's `tensor` (N_r x ..., N_r may differ), in rank order; no gradient."""
    if world_size() == 1:
        return [tensor]
    sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=tensor.device))
    largest = int(max(sizes))
    padded = tensor.new_zeros((largest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded.contiguous())
    return [part[: int(size)] for part, size in zip(parts, sizes)]


@torch.no_grad()
def shuffled_forward(
    encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, *seed: int, splits: int = 1
) -> torch.Tensor:
    """`encoder(images)`, but each process encodes a random slice of the global batch: MoCo's shuffling BN.

    He et al., CVPR 2020, Sec. 3.3: with BatchNorm computed per process, a key encoder that sees the same
    sub-batch as the query encoder leaks which sample is the positive through the batch statistics; shuffling
    the samples across processes for the key encoder (and back afterwards) removes that. The permutation is
    drawn from `seed` (e.g. the run's seed and step), the same on every process, so nothing is broadcast.

    On one process with `splits` > 1, what `splits` processes would do (MoCo's single-GPU demo emulates
    shuffling BN so, with its SplitBatchNorm): the batch permuted by the same draw, encoded in `splits`
    slices (`split_forward`), and put back in order."""
    if world_size() == 1 and splits == 1:
        return encoder(images)
    everything = gather(images)
    order = torch.randperm(everything.shape[0], generator=torch.Generator().manual_seed(derived_seed(*seed)))
    order = order.to(images.device)
    if world_size() == 1:
        mine = slice(None)
        encoded = split_forward(encoder, everything[order], splits)
    else:
        mine = batch_slice(everything.shape[0], rank(), world_size())
        encoded = gather(encoder(everything[order[mine]]))
    restored = torch.empty_like(encoded)
    restored[order] = encoded  # row order[i] of the batch was encoded at position i
    return restored[mine]


def split_forward(encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, splits: int) -> torch.Tensor:
    """`encoder` on `splits` near-equal, contiguous slices of the batch in turn, concatenated: in training mode
    each slice's BatchNorm statistics are its own, as on `splits` processes with a slice each."""
    if splits == 1:
        return encoder(images)
    return torch.cat([encoder(part) for part in images.tensor_split(splits)])
