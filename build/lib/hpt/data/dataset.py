"""A map-style dataset over an `ImageList`, returning `(transform(image), label)` (label -1 if unlabelled)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from hpt.data.decode import RGB, Decoding
from hpt.data.files import ImageList
from hpt.data.unreadable import UnreadableFiles


class ImageDataset(Dataset):
    def __init__(
        self,
        images: ImageList,
        transform: Callable[[Any], Any],
        decoding: Decoding = RGB,
        unreadable: UnreadableFiles | None = None,
    ) -> None:
        self.images = images
        self.transform = transform
        self.decoding = decoding
        """How the dataset's files become pixels (`decode.py`): its intensity window and band count."""
        self.unreadable = unreadable
        """Training's: a file that no longer decodes is listed and another image stands in (`unreadable.py`);
        None: its error is raised."""

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if self.unreadable is None:
            pixels = self.decoding(*self.images.item(index))
        else:
            index, pixels = self.unreadable.decode(self.decoding, self.images, index)
        label = self.images.labels[index] if self.images.labels is not None else -1
        return self.transform(pixels), label


def sample_batches(
    images: ImageList,
    transform: Callable[[Any], Any],
    count: int,
    batch_size: int,
    seed: int,
    decoding: Decoding = RGB,
    unreadable: UnreadableFiles | None = None,
) -> Iterator[Any]:
    """Batches of transformed images (no labels) from a fixed random sample of `count` images (`sample_indices`)."""
    chosen = sample_indices(len(images), count, seed)
    loader = DataLoader(Subset(ImageDataset(images, transform, decoding, unreadable), chosen), batch_size=batch_size)
    for batch, _ in loader:
        yield batch


def sample_indices(total: int, count: int, seed: int) -> list[int]:
    """`sample_batches`' images: the first `count` of a seeded permutation of `total`."""
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count].tolist()


def forever(loader: DataLoader) -> Iterator[Any]:
    """Batches across epochs without end (training is counted in steps, not epochs)."""
    while True:
        yield from loader
