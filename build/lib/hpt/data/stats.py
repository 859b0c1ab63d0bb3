"""The dataset's own per-channel pixel mean and std: views are normalised with the data's statistics, not ImageNet's.

Computed once on a fixed sample of the images, as the evaluation transform sees them (resize + centre
crop, before normalisation), and cached (`cache.py`) under a key over the sampled files and the image size.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hpt.checkpoints.provenance import FileProvenance
from hpt.data.cache import files_key, read_cached, write_cached
from hpt.data.decode import RGB, Decoding
from hpt.data.files import ImageList, frames_of
from hpt.data.views import resize_crop
from hpt.errors import HptError, first_line

STD_FLOOR = 1e-3
"""The smallest std kept (a quarter of a grey level): a channel that never varies is not divided by zero."""


@dataclass(frozen=True)
class PixelStats:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    """One per channel: 3 for RGB, N for N-band images."""
    unreadable: dict[Path, str] = field(default_factory=dict, compare=False)
    """Sampled files that no longer decoded (changed since screening), with why: left out of the statistics."""

    @property
    def flat(self) -> bool:
        """Every channel at the floor: the sampled images are one value everywhere, nothing to learn from."""
        return all(s <= STD_FLOOR for s in self.std)


def recorded_stats(provenance: FileProvenance | None, channels: int) -> PixelStats | None:
    """The mean/std a model was pretrained with (its `config.json` tells downstream code the same), if it records
    them for `channels` bands: what `hpt eval` normalises with, and a distillation teacher sees."""
    data = provenance.data if provenance else None
    if data and data.mean is not None and data.std is not None and len(data.mean) == len(data.std) == channels:
        return PixelStats(tuple(data.mean), tuple(data.std))
    return None


def pixel_stats(images: ImageList, image_size: int, sample: int, seed: int = 0, decoding: Decoding = RGB) -> PixelStats:
    """Per channel, of the images as the views see them (`decoding`: the dataset's window and bands)."""
    items = images.sample(sample, seed)
    key = files_key([path for path, _ in items], "stats", image_size, decoding, *frames_of(items))
    cached = read_cached("stats", key)
    if cached is not None:
        return PixelStats(tuple(cached["mean"]), tuple(cached["std"]))
    stats = _compute(items, image_size, decoding)
    if not all(math.isfinite(v) for v in (*stats.mean, *stats.std)):
        raise HptError(f"the pixel mean/std of {len(items)} sampled images are not finite: {stats.mean}, {stats.std}")
    if not stats.unreadable:  # a file that failed to decode may be back next time
        write_cached("stats", key, {"mean": stats.mean, "std": stats.std, "images": len(items)})
    return stats


def _compute(items: list[tuple[Path, int | None]], image_size: int, decoding: Decoding) -> PixelStats:
    """Decoded and cropped in a thread per core (PIL and the decoders release the interpreter lock), summed in
    the sample's order, so the result is the same whatever the threads."""
    crop = resize_crop(image_size)
    total = torch.zeros(decoding.channels, dtype=torch.float64)
    total_sq = torch.zeros(decoding.channels, dtype=torch.float64)
    count, unreadable = 0, {}

    def pixels_of(item: tuple[Path, int | None]) -> torch.Tensor | str:
        try:
            return crop(decoding(*item)).to(torch.float64).flatten(1)  # C x HW, in [0, 1]
        except Exception as exc:  # noqa: BLE001 - changed since screening: left out, and said by the caller
            return f"unreadable after screening ({type(exc).__name__}: {first_line(exc)})"

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for (path, _), pixels in zip(items, pool.map(pixels_of, items)):
            if isinstance(pixels, str):
                unreadable[path] = pixels
                continue
            total += pixels.sum(dim=1)
            total_sq += (pixels * pixels).sum(dim=1)
            count += pixels.shape[1]
    if not count:
        raise HptError(f"none of the {len(items)} images sampled for the pixel statistics decodes any more")
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt().clamp_min(STD_FLOOR)
    return PixelStats(tuple(mean.tolist()), tuple(std.tolist()), unreadable)
