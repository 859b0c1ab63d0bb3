"""The dataset's own per-channel pixel mean and std (DESIGN.md: normalise with the data's statistics).

Computed once on a fixed sample of the images, as the evaluation transform sees them (resize + centre
crop, before normalisation), and cached in `$HPT_CACHE_DIR` (default `~/.cache/hpt`) under a key made of
the sampled files' paths, sizes and modification times and the image size: a changed file means a new key.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from hpt.data.decode import load_rgb
from hpt.data.files import ImageList
from hpt.data.views import resize_crop


@dataclass(frozen=True)
class PixelStats:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def cache_dir() -> Path:
    return Path(os.environ.get("HPT_CACHE_DIR", Path.home() / ".cache" / "hpt")).expanduser()


def pixel_stats(images: ImageList, image_size: int, sample: int, seed: int = 0) -> PixelStats:
    paths = sorted(images.paths)
    if len(paths) > sample:
        paths = sorted(random.Random(seed).sample(paths, sample))
    key = _cache_key(paths, image_size)
    cache_file = cache_dir() / "stats" / f"{key}.json"
    if cache_file.is_file():
        cached = json.loads(cache_file.read_text())
        return PixelStats(tuple(cached["mean"]), tuple(cached["std"]))
    stats = _compute(paths, image_size)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps({"mean": stats.mean, "std": stats.std, "images": len(paths)}))
    except OSError:
        pass  # an unwritable cache costs a recomputation next time, nothing more
    return stats


def _cache_key(paths: list[Path], image_size: int) -> str:
    digest = hashlib.sha256(f"v1 {image_size}\n".encode())
    for path in paths:
        st = path.stat()
        digest.update(f"{path.resolve()} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _compute(paths: list[Path], image_size: int) -> PixelStats:
    crop = resize_crop(image_size)
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for path in paths:
        pixels = crop(load_rgb(path)).to(torch.float64).flatten(1)  # 3 x HW, in [0, 1]
        total += pixels.sum(dim=1)
        total_sq += (pixels * pixels).sum(dim=1)
        count += pixels.shape[1]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return PixelStats(tuple(mean.tolist()), tuple(std.tolist()))
