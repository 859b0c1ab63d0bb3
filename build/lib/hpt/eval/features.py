"""The one feature extractor every protocol shares: batched, no augmentation, no gradients.

Under several processes (a DDP run's monitor) each process encodes every `world`-th image and the features
are gathered, so every process ends with all of them, in the dataset's order.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from hpt.backbones import Backbone
from hpt.core.distributed import gather_uneven, rank, world_size
from hpt.core.interrupt import check as check_interrupt


def eval_device() -> str:
    """Where evaluation runs: the GPU when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@torch.inference_mode()
def extract_features(
    backbone: Backbone,
    dataset: Dataset,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features N x num_features float32 on the CPU, labels N) with the backbone in eval mode."""
    was_training = backbone.training
    backbone.eval().to(device)
    world = world_size()
    mine = Subset(dataset, range(rank(), len(dataset), world)) if world > 1 else dataset  # type: ignore[arg-type]
    loader = DataLoader(mine, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    features, labels = [], []
    for images, targets in loader:
        check_interrupt()  # a stop signal is honoured between batches (`core/interrupt.py`)
        features.append(backbone.forward_features(images.to(device)).float())
        labels.append(torch.as_tensor(targets).to(device))
    backbone.train(was_training)
    if not features:  # fewer images than processes
        features.append(torch.zeros(0, backbone.num_features, device=device))
        labels.append(torch.zeros(0, dtype=torch.long, device=device))
    local_features, local_labels = torch.cat(features), torch.cat(labels)
    if world == 1:
        return local_features.cpu(), local_labels.cpu()
    return _interleave(gather_uneven(local_features)), _interleave(gather_uneven(local_labels))


def _interleave(parts: list[torch.Tensor]) -> torch.Tensor:
    """Rank r encoded items r, r + W, r + 2W, ...: put them back in the dataset's order."""
    total = sum(part.shape[0] for part in parts)
    out = parts[0].new_empty((total, *parts[0].shape[1:]))
    for r, part in enumerate(parts):
        out[r :: len(parts)] = part
    return out.cpu()
