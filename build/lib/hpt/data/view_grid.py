"""A picture of what training sees: a few images, each beside two of its training views.

Drawn once at the start of a run (`train.view_grid`), so that a user sees whether the view policy suits the
data (a colour jitter on X-rays, crops that miss the lesion) before the run's hours are spent. High-bit images
are drawn after the intensity window, as the model sees them; multi-band images as three of their bands
(`data.preview_bands`, `as_rgb`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn.functional import interpolate
from torchvision.utils import make_grid

from hpt.data.decode import Decoding
from hpt.data.files import ImageList
from hpt.data.views import resize_crop
from hpt.errors import HptError

MIN_TILE = 96
"""Small images are enlarged (nearest neighbour, pixels kept visible) to at least this many pixels a side."""


def preview_channels(preview_bands: Sequence[int] | None, decoding: Decoding) -> tuple[int, ...] | None:
    """`data.preview_bands` (file band numbers, from 1) as the 0-based channels of what the model sees."""
    if preview_bands is None:
        return None
    taken = decoding.bands or tuple(range(1, decoding.channels + 1))
    missing = [band for band in preview_bands if band not in taken]
    if missing:
        raise HptError(
            f"data.preview_bands {list(preview_bands)}: band {missing[0]} is not among the {decoding.channels} "
            f"bands the model sees ({list(taken)})"
        )
    return tuple(taken.index(band) for band in preview_bands)


def as_rgb(pixels: torch.Tensor, preview: Sequence[int] | None = None) -> torch.Tensor:
    """C x H x W -> 3 x H x W: the channels at `preview` (0-based) as red, green and blue; None: the first three,
    or the first as grey when there are fewer."""
    if preview is not None:
        return pixels[list(preview)]
    return pixels[:3] if pixels.shape[0] >= 3 else pixels[:1].expand(3, -1, -1)


def view_grid(
    images: ImageList,
    decoding: Decoding,
    view: Callable[[Any], torch.Tensor],
    count: int,
    seed: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    preview: Sequence[int] | None = None,
) -> tuple[torch.Tensor, int]:
    """(3 x H x W in [0, 1], the images drawn): for each image (a fixed random sample of `count`, or every one of
    fewer) the image as evaluated (resized, centre-cropped) then two draws of `view`, un-normalised with `mean`
    and `std`; two images a row. Multi-band images as `as_rgb(..., preview)`."""
    size = view(decoding(*images.item(0))).shape[-1]
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    as_is = resize_crop(size)
    scale, shift = torch.tensor(std).view(-1, 1, 1), torch.tensor(mean).view(-1, 1, 1)
    torch.manual_seed(seed)  # the views' random draws: the same picture every time
    tiles = []
    for index in chosen:
        image = decoding(*images.item(index))
        drawn = [as_is(image), *((view(image) * scale + shift).clamp(0, 1) for _ in range(2))]
        tiles += [as_rgb(tile, preview) for tile in drawn]
    stacked = torch.stack(tiles)
    if size < MIN_TILE:
        stacked = interpolate(stacked, scale_factor=-(-MIN_TILE // size), mode="nearest")
    return make_grid(stacked, nrow=6 if len(chosen) > 1 else 3, padding=2, pad_value=1.0), len(chosen)
