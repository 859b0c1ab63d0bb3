"""A map-style dataset over an `ImageList`, returning `(transform(image), label)` (label -1 if unlabelled)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from hpt.data.decode import RGB, Decoding
from hpt.data.files import ImageList


class ImageDataset(Dataset):
    def __init__(self, images: ImageList, transform: Callable[[Any], Any], decoding: Decoding = RGB) -> None:
        self.images = images
        self.transform = transform
        self.decoding = decoding
        """How the dataset's files become pixels (`decode.py`): its intensity window and band count."""

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        label = self.images.labels[index] if self.images.labels is not None else -1
        return self.transform(self.decoding(self.images.paths[index])), label


def sample_batches(
    images: ImageList,
    transform: Callable[[Any], Any],
    count: int,
    batch_size: int,
    seed: int,
    decoding: Decoding = RGB,
) -> Iterator[Any]:
    """Batches of transformed images (no labels) from a fixed random sample of `count` images."""
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    loader = DataLoader(Subset(ImageDataset(images, transform, decoding), chosen), batch_size=batch_size)
    for batch, _ in loader:
        yield batch


def forever(loader: DataLoader) -> Iterator[Any]:
    """Batches across epochs without end (training is counted in steps, not epochs)."""
    while True:
        yield from loader
