"""View policies for pretraining (MoCo v2's augmentation and its ablations) and the one evaluation view.

MoCo v2 (Chen et al., 2020, "Improved Baselines with Momentum Contrastive Learning"):
RandomResizedCrop(scale 0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale p=0.2, Gaussian blur
(sigma 0.1-2) p=0.5, horizontal flip, normalise. HPT's robustness study removes parts of it by name.

The blur is MoCo v2's code's: PIL's `ImageFilter.GaussianBlur(radius=sigma)`, sigma uniform in 0.1-2 (also
ten times faster than torchvision's kernel blur on PIL images, which converts to a tensor and back).
Deviation, for small images: the sigma range is scaled by `image_size / 224`, so a 224-pixel run is exactly
MoCo v2's and a 32-pixel run blurs by the same fraction of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2

from hpt.config import ViewPolicy
from hpt.data.decode import Decoding


@dataclass(frozen=True)
class Recipe:
    """The numbers of an augmentation recipe, written once for both ways hpt makes views: per image on the CPU
    (`pretrain_view`) and in batches on the device (`device_views.py`)."""

    jitter: tuple[float, float, float, float]
    """ColorJitter's brightness, contrast, saturation and hue."""
    p_jitter: float
    p_grayscale: float
    blur_sigma: tuple[float, float]
    """The Gaussian blur's sigma range at 224 px (scaled by image size / 224, see above)."""
    p_blur: float
    p_flip: float

    def sigma_range(self, image_size: int) -> tuple[float, float]:
        scale = image_size / 224
        return self.blur_sigma[0] * scale, self.blur_sigma[1] * scale


MOCO_V2 = Recipe(
    jitter=(0.4, 0.4, 0.4, 0.1), p_jitter=0.8, p_grayscale=0.2, blur_sigma=(0.1, 2.0), p_blur=0.5, p_flip=0.5
)

POLICIES: dict[str, frozenset[str]] = {
    "full": frozenset({"color", "grayscale", "blur"}),
    "no-color": frozenset({"grayscale", "blur"}),
    "no-grayscale": frozenset({"color", "blur"}),
    "crop-blur": frozenset({"blur"}),
    "crop-only": frozenset(),
    "rotation": frozenset({"color", "grayscale", "blur", "rotate"}),
    "scan": frozenset({"tone", "blur"}),
    "scan-rotation": frozenset({"tone", "blur", "rotate"}),
}
"""Each policy's parts besides the crop and the horizontal flip: `color` (MoCo v2's colour jitter), `tone` (its
brightness and contrast only), `grayscale`, `blur`, `rotate` (a random multiple of 90 degrees and a vertical
flip, each with its own chance; with the horizontal flip all eight symmetries of the square are drawn)."""


def _to_tensor() -> list[v2.Transform]:
    return [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]


def resize_crop(image_size: int) -> v2.Compose:
    """Shorter side to `image_size`, centre crop, float tensor in [0, 1]: evaluation without normalising."""
    return v2.Compose([v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size), *_to_tensor()])


def eval_view(image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> v2.Compose:
    return v2.Compose([resize_crop(image_size), v2.Normalize(mean, std)])


def pretrain_view(
    policy: ViewPolicy,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    crop_scale: tuple[float, float] = (0.2, 1.0),
) -> v2.Compose:
    """The views of RGB images (PIL in, as MoCo v2's code); with statistics of another length, of multi-band
    images (`bands_view`)."""
    if len(mean) != 3:
        return bands_view(policy, image_size, mean, std, crop_scale)
    parts = POLICIES[policy]
    steps: list[v2.Transform] = [v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True)]
    recipe = MOCO_V2
    if "color" in parts:
        steps.append(v2.RandomApply([v2.ColorJitter(*recipe.jitter)], p=recipe.p_jitter))
    if "tone" in parts:
        brightness, contrast, _, _ = recipe.jitter
        steps.append(v2.RandomApply([v2.ColorJitter(brightness, contrast)], p=recipe.p_jitter))
    if "grayscale" in parts:
        steps.append(v2.RandomGrayscale(p=recipe.p_grayscale))
    if "blur" in parts:
        steps.append(v2.RandomApply([PILGaussianBlur(*recipe.sigma_range(image_size))], p=recipe.p_blur))
    steps.append(v2.RandomHorizontalFlip(p=recipe.p_flip))
    if "rotate" in parts:
        steps += [v2.RandomVerticalFlip(p=recipe.p_flip), RandomQuarterTurns()]
    return v2.Compose([*steps, *_to_tensor(), v2.Normalize(mean, std)])


def bands_view(
    policy: ViewPolicy,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    crop_scale: tuple[float, float] = (0.2, 1.0),
) -> v2.Compose:
    """The same policy on a C x H x W uint8 tensor of any number of bands: colour jitter and grayscale are RGB
    operations, so `color` and `tone` become brightness and contrast jitter with a factor per band
    (`BandJitter`); the blur is torchvision's tensor blur with MoCo v2's sigma range."""
    parts = POLICIES[policy]
    recipe = MOCO_V2
    steps: list[v2.Transform] = [
        v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if "color" in parts or "tone" in parts:
        brightness, contrast, _, _ = recipe.jitter
        steps.append(v2.RandomApply([BandJitter(brightness, contrast)], p=recipe.p_jitter))
    if "blur" in parts:
        low, high = recipe.sigma_range(image_size)
        kernel = 2 * math.ceil(3 * high) + 1
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, (low, high))], p=recipe.p_blur))
    steps.append(v2.RandomHorizontalFlip(p=recipe.p_flip))
    if "rotate" in parts:
        steps += [v2.RandomVerticalFlip(p=recipe.p_flip), RandomQuarterTurns()]
    return v2.Compose([*steps, v2.Normalize(mean, std)])


class BandJitter(torch.nn.Module):
    """Brightness and contrast jitter with its own factors for each band, in a random order: brightness scales a
    band, contrast blends it with its own mean (ColorJitter's formulas, per band); values stay in [0, 1]."""

    def __init__(self, brightness: float, contrast: float) -> None:
        super().__init__()
        self.brightness, self.contrast = brightness, contrast

    def forward(self, bands: torch.Tensor) -> torch.Tensor:
        c = bands.shape[0]
        scale = 1 - self.brightness + 2 * self.brightness * torch.rand(c, 1, 1)
        blend = 1 - self.contrast + 2 * self.contrast * torch.rand(c, 1, 1)
        brightness_first = float(torch.rand(())) < 0.5
        if brightness_first:
            bands = (bands * scale).clamp(0, 1)
        bands = (blend * bands + (1 - blend) * bands.mean(dim=(1, 2), keepdim=True)).clamp(0, 1)
        return bands if brightness_first else (bands * scale).clamp(0, 1)


class PILGaussianBlur(torch.nn.Module):
    """MoCo v2's blur: PIL's Gaussian blur with a radius (sigma) drawn uniformly from [low, high] (torch's RNG)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, image: Image.Image) -> Image.Image:
        sigma = self.low + (self.high - self.low) * float(torch.rand(()))
        return image.filter(ImageFilter.GaussianBlur(radius=sigma))


class RandomQuarterTurns(torch.nn.Module):
    """Rotate by 0, 90, 180 or 270 degrees, each as likely (torch's RNG); exact, no interpolation."""

    TURNS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)

    def forward(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        turns = int(torch.randint(4, ()))
        if isinstance(image, torch.Tensor):  # C x H x W (multi-band views); counter-clockwise, as PIL's
            return image.rot90(turns, dims=(-2, -1))
        turn = self.TURNS[turns]
        return image if turn is None else image.transpose(turn)


class MultiView:
    """Independent views of one image, one per transform: two for the positive pair of contrastive methods,
    2 large + N small for multi-crop (SwAV, DINO)."""

    def __init__(self, views: list[v2.Compose]) -> None:
        self.views = views

    def __call__(self, image):
        return [view(image) for view in self.views]


def draft_of(views: object) -> int:
    """The JPEG draft (`decode.Decoding.draft`) that every random resized crop among `views` (a `MultiView`, a
    `Compose`, a transform) allows: its most demanding crop's; 0 where there is none (nothing is reduced)."""
    if isinstance(views, v2.RandomResizedCrop):
        return Decoding.draft_for(views.size[0], views.scale[0])
    inner = getattr(views, "views", None) or getattr(views, "transforms", None) or ()
    return max((draft_of(part) for part in inner), default=0)


def two_views(view: v2.Compose) -> MultiView:
    return MultiView([view, view])


LARGE_CROPS = 2
"""Multi-crop's large (global) crops per image: the ones every small crop is compared with."""


def small_crop_size(image_size: int, ratio: float) -> int:
    """A small crop's side: `ratio` of the image size (96/224 in SwAV and DINO), at least 8 pixels."""
    return max(8, round(image_size * ratio))


SMALL_MIN_SCALE = 0.05
"""The smallest share of the image a small crop covers (SwAV's and DINO's 0.05)."""


def multi_crop(make_view, small_crops: int, small_size: int, split: float) -> MultiView:
    """Multi-crop (Caron et al., SwAV, NeurIPS 2020; DINO, ICCV 2021): 2 large crops at the run's size covering
    `split`-1 of the image, then `small_crops` crops of `small_size` pixels covering `SMALL_MIN_SCALE`-`split`.
    `make_view(size=..., scale=...)` is the run's view policy (`methods.base.ViewFactory`)."""
    large = make_view(scale=(split, 1.0))
    small = make_view(size=small_size, scale=(SMALL_MIN_SCALE, split))
    return MultiView([large] * LARGE_CROPS + [small] * small_crops)
