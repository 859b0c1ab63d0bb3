"""The dataset's own per-channel pixel mean and std: views are normalised with the data's statistics, not ImageNet's.

Computed once on a fixed sample of the images, as the evaluation transform sees them (resize + centre
crop, before normalisation), and cached (`cache.py`) under a key over the sampled files and the image size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from hpt.data.cache import files_key, read_cached, write_cached
from hpt.data.decode import RGB, Decoding
from hpt.data.files import ImageList
from hpt.data.views import resize_crop


@dataclass(frozen=True)
class PixelStats:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    """One per channel: 3 for RGB, N for N-band images."""


def pixel_stats(images: ImageList, image_size: int, sample: int, seed: int = 0, decoding: Decoding = RGB) -> PixelStats:
    """Per channel, of the images as the views see them (`decoding`: the dataset's window and bands)."""
    paths = sorted(images.paths)
    if len(paths) > sample:
        paths = sorted(random.Random(seed).sample(paths, sample))
    key = files_key(paths, "stats", image_size, decoding)
    cached = read_cached("stats", key)
    if cached is not None:
        return PixelStats(tuple(cached["mean"]), tuple(cached["std"]))
    stats = _compute(paths, image_size, decoding)
    write_cached("stats", key, {"mean": stats.mean, "std": stats.std, "images": len(paths)})
    return stats


def _compute(paths: list[Path], image_size: int, decoding: Decoding) -> PixelStats:
    crop = resize_crop(image_size)
    total = torch.zeros(decoding.channels, dtype=torch.float64)
    total_sq = torch.zeros(decoding.channels, dtype=torch.float64)
    count = 0
    for path in paths:
        pixels = crop(decoding(path)).to(torch.float64).flatten(1)  # C x HW, in [0, 1]
        total += pixels.sum(dim=1)
        total_sq += (pixels * pixels).sum(dim=1)
        count += pixels.shape[1]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return PixelStats(tuple(mean.tolist()), tuple(std.tolist()))
