"""The one feature extractor every protocol shares: batched, no augmentation, no gradients."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from hpt.backbones import Backbone


def eval_device() -> str:
    """Where evaluation runs: the GPU when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@torch.inference_mode()
def extract_features(backbone: Backbone, dataset: Dataset, batch_size: int = 256, num_workers: int = 0,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(features N x num_features float32 on the CPU, labels N) with the backbone in eval mode."""
    was_training = backbone.training
    backbone.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    features, labels = [], []
    for images, targets in loader:
        features.append(backbone.forward_features(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(targets))
    backbone.train(was_training)
    return torch.cat(features), torch.cat(labels)
