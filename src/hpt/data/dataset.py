"""A map-style dataset over an `ImageList`, returning `(transform(image), label)` (label -1 if unlabelled)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from hpt.data.decode import load_rgb
from hpt.data.files import ImageList


class ImageDataset(Dataset):
    def __init__(self, images: ImageList, transform: Callable[[Any], Any]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        label = self.images.labels[index] if self.images.labels is not None else -1
        return self.transform(load_rgb(self.images.paths[index])), label
