"""The view augmentation on the training device, in batches (`views.on_device`).

Self-supervised pretraining starves GPUs on CPU-side augmentation: colour jitter and blur per image in PIL cost more
than the forward pass of a small model. With `views.on_device` the loader workers only decode each image and take
its random resized crop (kept as uint8: a quarter of the bytes to move, pinned), and the rest of the view policy
runs here on whole batches, each image with its own random parameters, exactly as `views.py` composes it, with the
same numbers (`views.MOCO_V2`): colour jitter (its four adjustments in a random order per image), grayscale,
Gaussian blur (sigma scaled by the view's size / 224, a kernel of +-3 sigma, reflect padding: the Gaussian PIL's
blur approximates), horizontal flip, the `rotate` part's vertical flip and quarter turns, then normalisation
with the dataset's statistics. The formulas are torchvision's tensor ones (`transforms.v2.functional`), batched
with a factor per image; the only difference from the CPU path is that values are not rounded to 8 bits between
operations (tests/test_device_views.py holds the two to the same distribution).

The random parameters of step `s` and view `v` are drawn for the whole global batch from (seed, s, v), and each
process takes its slice: the same views on any number of processes, and after `--resume`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from hpt.config import ViewPolicy
from hpt.core.distributed import batch_slice
from hpt.core.seeds import derived_seed
from hpt.data.views import MOCO_V2, POLICIES

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def crop_view(size: int, scale: tuple[float, float]) -> v2.Compose:
    """What the loader workers do with `views.on_device`: the random resized crop, as uint8 (3 x size x size)."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.PILToTensor()])


class DeviceViews:
    """Turns the loader's uint8 crops of one step into normalised float views on their device."""

    def __init__(
        self,
        policy: ViewPolicy,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        seed: int,
        global_batch: int,
        part: int = 0,
        parts: int = 1,
    ) -> None:
        self.parts_of_policy = POLICIES[policy]
        self.mean, self.std, self.seed = torch.tensor(mean), torch.tensor(std), seed
        self.global_batch, self.mine = global_batch, batch_slice(global_batch, part, parts)

    def __call__(self, views: list[torch.Tensor], step: int) -> list[torch.Tensor]:
        return [
            self.augment(view, torch.Generator().manual_seed(derived_seed(self.seed, step, index)))
            for index, view in enumerate(views)
        ]

    def augment(self, crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """crops: N x 3 x H x W uint8 (this process's slice of the global batch) -> normalised float."""
        draw = ViewDraw.sample(self.global_batch, crops.shape[-1], self.parts_of_policy, generator)
        draw = draw.slice(self.mine).to(crops.device)
        images = crops.float() / 255
        images = color_jitter(images, draw)
        images = torch.where(_per_image(draw.gray), grayscale(images), images)
        images = torch.where(_per_image(draw.blur), gaussian_blur(images, draw.sigma, draw.kernel), images)
        images = torch.where(_per_image(draw.flip), images.flip(-1), images)
        images = torch.where(_per_image(draw.vflip), images.flip(-2), images)
        for turns in (1, 2, 3):  # square crops: a quarter turn keeps the shape
            images = torch.where(_per_image(draw.turns == turns), images.rot90(turns, dims=(-2, -1)), images)
        mean, std = self.mean.to(images.device).view(1, -1, 1, 1), self.std.to(images.device).view(1, -1, 1, 1)
        return (images - mean) / std


class ViewDraw:
    """The random parameters of a batch of views, one row per image."""

    def __init__(
        self,
        jitter: torch.Tensor,
        factors: torch.Tensor,
        order: torch.Tensor,
        gray: torch.Tensor,
        blur: torch.Tensor,
        sigma: torch.Tensor,
        flip: torch.Tensor,
        kernel: int,
        vflip: torch.Tensor,
        turns: torch.Tensor,
    ) -> None:
        self.jitter, self.factors, self.order = jitter, factors, order
        self.gray, self.blur, self.sigma, self.flip, self.kernel = gray, blur, sigma, flip, kernel
        self.vflip, self.turns = vflip, turns

    @classmethod
    def sample(cls, n: int, size: int, parts: frozenset[str], generator: torch.Generator) -> ViewDraw:
        def chance(p: float, enabled: bool = True) -> torch.Tensor:
            return (torch.rand(n, generator=generator) < p) & enabled

        recipe = MOCO_V2
        b, c, s, h = recipe.jitter
        low = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -h])
        high = torch.tensor([1 + b, 1 + c, 1 + s, h])
        factors = low + (high - low) * torch.rand(n, 4, generator=generator)
        order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)  # a random permutation per image
        low_sigma, high_sigma = recipe.sigma_range(size)
        sigma = low_sigma + (high_sigma - low_sigma) * torch.rand(n, generator=generator)
        if "tone" in parts and "color" not in parts:  # brightness and contrast only: the others at identity
            factors[:, 2], factors[:, 3] = 1.0, 0.0
        jitter = chance(recipe.p_jitter, "color" in parts or "tone" in parts)
        gray, blur, flip = (
            chance(recipe.p_grayscale, "grayscale" in parts),
            chance(recipe.p_blur, "blur" in parts),
            chance(recipe.p_flip),
        )
        # Drawn last, so that the policies without rotation draw exactly what they drew before it existed.
        rotates = "rotate" in parts
        vflip, turns = chance(recipe.p_flip, rotates), torch.randint(4, (n,), generator=generator) * rotates
        return cls(
            jitter=jitter,
            factors=factors,
            order=order,
            gray=gray,
            blur=blur,
            sigma=sigma,
            flip=flip,
            kernel=2 * math.ceil(3 * high_sigma) + 1,
            vflip=vflip,
            turns=turns,
        )

    def slice(self, rows: slice) -> ViewDraw:
        return ViewDraw(
            self.jitter[rows],
            self.factors[rows],
            self.order[rows],
            self.gray[rows],
            self.blur[rows],
            self.sigma[rows],
            self.flip[rows],
            self.kernel,
            self.vflip[rows],
            self.turns[rows],
        )

    def to(self, device: torch.device | str) -> ViewDraw:
        return ViewDraw(
            self.jitter.to(device),
            self.factors.to(device),
            self.order.to(device),
            self.gray.to(device),
            self.blur.to(device),
            self.sigma.to(device),
            self.flip.to(device),
            self.kernel,
            self.vflip.to(device),
            self.turns.to(device),
        )


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def _blend(image: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (_per_image(ratio) * image + (1 - _per_image(ratio)) * other).clamp(0, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(1)
    gray = GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b
    return gray.unsqueeze(1).expand_as(images)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(images, torch.zeros_like(images), factor)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(images)[:, :1].mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, factor)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(images, grayscale(images), factor)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = _rgb_to_hsv(images)
    return _hsv_to_rgb(torch.remainder(hue + shift.view(-1, 1, 1), 1.0), saturation, value)


ADJUSTMENTS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(images: torch.Tensor, draw: ViewDraw) -> torch.Tensor:
    """Each jittered image gets its four adjustments in its own order (ColorJitter's random permutation).

    Cost: finding the rows of each (position, adjustment) is `nonzero`, a host synchronisation, 16 per batch
    (`numel` then reads the result on the host). Applying every adjustment to the whole batch under a mask would
    avoid them at about five times the arithmetic; which is faster on a GPU has not been measured."""
    images = images.clone()
    identity = draw.factors == draw.factors.new_tensor([1.0, 1.0, 1.0, 0.0])  # `tone` leaves hue and saturation
    for position in range(4):
        for which, adjust in enumerate(ADJUSTMENTS):
            rows = torch.nonzero(draw.jitter & (draw.order[:, position] == which) & ~identity[:, which]).flatten()
            if rows.numel():
                images[rows] = adjust(images[rows], draw.factors[rows, which])
    return images


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur with a sigma per image, reflect padding (torchvision's gaussian_blur)."""
    n, c, h, w = images.shape
    half = (kernel - 1) * 0.5
    x = torch.linspace(-half, half, kernel, device=images.device, dtype=images.dtype)
    weights = torch.exp(-0.5 * (x.view(1, -1) / sigma.view(-1, 1)).pow(2))
    weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*c) x kernel
    flat = images.reshape(1, n * c, h, w)
    pad = kernel // 2
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), weights.view(n * c, 1, 1, kernel), groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), weights.view(n * c, 1, kernel, 1), groups=n * c)
    return flat.view(n, c, h, w)


def _rgb_to_hsv(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = images.unbind(1)
    maximum, minimum = images.max(dim=1).values, images.min(dim=1).values
    chroma = maximum - minimum
    equal = chroma == 0
    saturation = chroma / torch.where(maximum == 0, torch.ones_like(maximum), maximum)
    safe = torch.where(equal, torch.ones_like(chroma), chroma)
    rc, gc, bc = (maximum - r) / safe, (maximum - g) / safe, (maximum - b) / safe
    hue_r = (maximum == r) * (bc - gc)
    hue_g = ((maximum == g) & (maximum != r)) * (2.0 + rc - bc)
    hue_b = ((maximum != g) & (maximum != r)) * (4.0 + gc - rc)
    hue = torch.remainder((hue_r + hue_g + hue_b) / 6.0 + 1.0, 1.0)
    return hue, saturation, maximum


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    sector = torch.floor(hue * 6.0)
    fraction = hue * 6.0 - sector
    sector = sector.to(torch.int64) % 6
    p = (value * (1.0 - saturation)).clamp(0, 1)
    q = (value * (1.0 - saturation * fraction)).clamp(0, 1)
    t = (value * (1.0 - saturation * (1.0 - fraction))).clamp(0, 1)
    table = torch.stack(
        [  # per sector: (r, g, b)
            torch.stack([value, t, p], 1),
            torch.stack([q, value, p], 1),
            torch.stack([p, value, t], 1),
            torch.stack([p, q, value], 1),
            torch.stack([t, p, value], 1),
            torch.stack([value, p, q], 1),
        ],
        0,
    )
    index = sector.view(1, sector.shape[0], 1, *sector.shape[1:]).expand(1, -1, 3, -1, -1)
    return table.gather(0, index).squeeze(0)
