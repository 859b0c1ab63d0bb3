"""A picture of what training sees: a few images, each beside two of its training views.

Drawn once at the start of a run (`train.view_grid`), so that a user sees whether the view policy suits the
data (a colour jitter on X-rays, crops that miss the lesion) before the run's hours are spent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.nn.functional import interpolate
from torchvision.utils import make_grid

from hpt.data.decode import Decoding
from hpt.data.files import ImageList
from hpt.data.views import resize_crop

MIN_TILE = 96
"""Small images are enlarged (nearest neighbour, pixels kept visible) to at least this many pixels a side."""


def view_grid(
    images: ImageList,
    decoding: Decoding,
    view: Callable[[Any], torch.Tensor],
    count: int,
    seed: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> torch.Tensor:
    """3 x H x W in [0, 1]: for each image (a fixed random sample of `count`) the image as evaluated (resized,
    centre-cropped) then two draws of `view`, un-normalised with `mean` and `std`; two images a row."""
    size = view(decoding(images.paths[0])).shape[-1]
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    as_is = resize_crop(size)
    scale, shift = torch.tensor(std).view(-1, 1, 1), torch.tensor(mean).view(-1, 1, 1)
    torch.manual_seed(seed)  # the views' random draws: the same picture every time
    tiles = []
    for index in chosen:
        image = decoding(images.paths[index])
        tiles += [as_is(image), *((view(image) * scale + shift).clamp(0, 1) for _ in range(2))]
    stacked = torch.stack(tiles)
    if size < MIN_TILE:
        stacked = interpolate(stacked, scale_factor=-(-MIN_TILE // size), mode="nearest")
    return make_grid(stacked, nrow=6 if len(chosen) > 1 else 3, padding=2, pad_value=1.0)
