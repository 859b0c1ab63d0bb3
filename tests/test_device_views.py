"""`views.on_device`: the batched augmentation computes torchvision's operations image by image, and its views
follow the same distribution as the CPU path's on real photos (fixed seeds); a real run uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from hpt.config import load_config
from hpt.core.run_files import read_metrics
from hpt.data import device_views as dv
from hpt.data.views import pretrain_view
from hpt.train.loop import pretrain

MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.25, 0.25)


def _batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 20, 20, generator=g), torch.rand(n, generator=g)


@pytest.mark.parametrize(
    "name, factor",
    [
        ("brightness", lambda u: 0.6 + 0.8 * u),
        ("contrast", lambda u: 0.6 + 0.8 * u),
        ("saturation", lambda u: 0.6 + 0.8 * u),
        ("hue", lambda u: 0.2 * u - 0.1),
    ],
)
def test_each_adjustment_with_a_factor_per_image_is_torchvisions(name, factor):
    images, u = _batch()
    factors = factor(u)
    ours = getattr(dv, f"adjust_{name}")(images, factors)
    theirs = torch.stack([getattr(TF, f"adjust_{name}")(image, float(f)) for image, f in zip(images, factors)])
    torch.testing.assert_close(ours, theirs, atol=2e-6, rtol=0)


def test_grayscale_blur_and_jitter_order_are_torchvisions():
    images, u = _batch()
    torch.testing.assert_close(dv.grayscale(images), TF.rgb_to_grayscale(images, num_output_channels=3))
    sigma = 0.1 + 1.9 * u
    theirs = torch.stack([TF.gaussian_blur(image, [5, 5], [float(s)] * 2) for image, s in zip(images, sigma)])
    torch.testing.assert_close(dv.gaussian_blur(images, sigma, 5), theirs, atol=1e-6, rtol=0)
    # colour jitter applies each image's four adjustments in that image's own order
    draw = dv.ViewDraw.sample(6, 20, frozenset({"color"}), torch.Generator().manual_seed(3))
    draw.jitter[:] = True
    expected = []
    for i, image in enumerate(images):
        for which in draw.order[i].tolist():
            name = ("brightness", "contrast", "saturation", "hue")[which]
            image = getattr(TF, f"adjust_{name}")(image, float(draw.factors[i, which]))
        expected.append(image)
    torch.testing.assert_close(dv.color_jitter(images, draw), torch.stack(expected), atol=2e-6, rtol=0)
    assert len({tuple(row) for row in draw.order.tolist()}) > 1  # the orders differ between images


def _summaries(views: torch.Tensor) -> dict[str, np.ndarray]:
    """Per view: channel means, pixel spread, sharpness (mean |horizontal difference|), whether it is grey."""
    pixels = views * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    return {
        "red": pixels[:, 0].mean((1, 2)).numpy(),
        "green": pixels[:, 1].mean((1, 2)).numpy(),
        "blue": pixels[:, 2].mean((1, 2)).numpy(),
        "spread": pixels.std((1, 2, 3)).numpy(),
        "sharpness": (pixels[..., 1:] - pixels[..., :-1]).abs().mean((1, 2, 3)).numpy(),
        "grey": ((pixels.amax(1) - pixels.amin(1)).amax((1, 2)) < 2 / 255).float().numpy(),
    }


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical distributions."""
    grid = np.sort(np.concatenate([a, b]))
    return float(
        np.abs(
            np.searchsorted(np.sort(a), grid, "right") / len(a) - np.searchsorted(np.sort(b), grid, "right") / len(b)
        ).max()
    )


def test_device_views_follow_the_cpu_views_distribution_on_real_photos():
    """600 views of three real photos (scikit-image) each way at 32 px, full policy: every summary's two-sample
    KS statistic stays under 0.113 (the 0.1% critical value for 600 + 600), and as many views are grey."""
    from skimage import data as photos

    images = [Image.fromarray(photo) for photo in (photos.astronaut(), photos.coffee(), photos.chelsea())]
    n, size = 600, 32
    cpu_view, crop = pretrain_view("full", size, MEAN, STD), dv.crop_view(size, (0.2, 1.0))
    cpu, crops = [], []
    for i in range(n):
        torch.manual_seed(10_000 + i)
        cpu.append(cpu_view(images[i % 3]))
        torch.manual_seed(20_000 + i)
        crops.append(crop(images[i % 3]))
    device = dv.DeviceViews("full", MEAN, STD, seed=0, global_batch=n).augment(
        torch.stack(crops), torch.Generator().manual_seed(1)
    )
    assert device.shape == (n, 3, size, size) and device.dtype == torch.float32
    ours, theirs = _summaries(device), _summaries(torch.stack(cpu))
    for name in ours:
        assert _ks(ours[name], theirs[name]) < 0.113, name
    assert abs(ours["grey"].mean() - theirs["grey"].mean()) < 0.05 and 0.1 < ours["grey"].mean() < 0.3


def test_quarter_turns_and_flips_are_exact_and_all_drawn_on_both_paths():
    """`rotate`: the CPU and device paths turn by exact multiples of 90 degrees, each about as often (400 draws:
    100 expected per turn, sd 8.7; the bounds are 4.6 sd away), and the device path's vertical flip and turns
    are those of torch.rot90/flip row by row."""
    from hpt.data.views import RandomQuarterTurns

    photo = np.arange(5 * 5 * 3, dtype=np.uint8).reshape(5, 5, 3)  # no two symmetries of it are equal
    turned = {k: np.rot90(photo, k).copy() for k in range(4)}
    seen = {k: 0 for k in range(4)}
    torch.manual_seed(0)
    for _ in range(400):
        out = np.asarray(RandomQuarterTurns()(Image.fromarray(photo)))
        seen[next(k for k, image in turned.items() if np.array_equal(out, image))] += 1
    assert all(60 < count < 140 for count in seen.values()), seen

    crops = (torch.arange(400 * 3 * 5 * 5).reshape(400, 3, 5, 5) % 251).to(torch.uint8)
    views = dv.DeviceViews("crop-only", (0.0,) * 3, (1.0,) * 3, seed=0, global_batch=400)
    views.parts_of_policy = frozenset({"rotate"})  # only the symmetries, so that rows compare exactly
    draw = dv.ViewDraw.sample(400, 5, frozenset({"rotate"}), torch.Generator().manual_seed(7))  # what it draws
    assert set(draw.turns.tolist()) == {0, 1, 2, 3} and 0 < int(draw.vflip.sum()) < 400
    images, expected = crops.float() / 255, []
    for i in range(400):
        row = images[i].flip(-1) if draw.flip[i] else images[i]
        row = row.flip(-2) if draw.vflip[i] else row
        expected.append(row.rot90(int(draw.turns[i]), dims=(-2, -1)))
    torch.testing.assert_close(views.augment(crops, torch.Generator().manual_seed(7)), torch.stack(expected))


def test_the_scan_policy_jitters_brightness_and_contrast_only():
    """On colour photos, `scan` changes no hue: each view's pixels keep the crop's ratios between channel
    differences, (R - G) : (G - B), up to the 8-bit rounding of the CPU path."""
    from skimage import data as photos

    cpu_view = pretrain_view("scan", 32, (0.0,) * 3, (1.0,) * 3, crop_scale=(1.0, 1.0))
    jitters = [t for t in cpu_view.transforms if type(t).__name__ == "RandomApply"]
    colour = [t for r in jitters for t in r.transforms if type(t).__name__ == "ColorJitter"]
    assert len(colour) == 1 and colour[0].saturation is None and colour[0].hue is None
    assert not any(type(t).__name__ == "RandomGrayscale" for t in cpu_view.transforms)

    draw = dv.ViewDraw.sample(50, 32, frozenset({"tone"}), torch.Generator().manual_seed(0))
    assert bool(draw.jitter.any()) and not bool(draw.gray.any())
    assert bool((draw.factors[:, 2] == 1).all()) and bool((draw.factors[:, 3] == 0).all())
    photo = torch.from_numpy(photos.coffee()[::8, ::8].copy()).permute(2, 0, 1).float() / 255
    images = photo.unsqueeze(0).expand(50, -1, -1, -1).contiguous()
    draw.jitter[:] = True
    jittered = dv.color_jitter(images, draw)
    expected = []
    for i in range(50):  # brightness and contrast in the image's own order, torchvision's formulas
        image = images[i]
        for which in draw.order[i].tolist():
            if which < 2:
                image = getattr(TF, ("adjust_brightness", "adjust_contrast")[which])(
                    image, float(draw.factors[i, which])
                )
        expected.append(image)
    torch.testing.assert_close(jittered, torch.stack(expected), atol=2e-6, rtol=0)


@pytest.mark.parametrize("policy", ["full", "scan-rotation"])
def test_a_run_with_views_on_the_device(digits, tmp_path, policy):
    config = load_config(
        None,
        {
            "data.path": str(digits["pretrain"]),
            "data.image_size": 16,
            "data.num_workers": 0,
            "model.backbone": "timm:test_resnet",
            "train.steps": 3,
            "train.batch_size": 8,
            "train.log_every": 1,
            "mocov2.queue_size": 32,
            "views.on_device": True,
            "views.policy": policy,
            "monitor.label_free_sample": 0,
        },
    )
    pretrain(config, tmp_path / "run")
    logged = read_metrics(tmp_path / "run")
    assert [m["step"] for m in logged] == [1, 2, 3] and all(np.isfinite(m["loss"]) for m in logged)
    assert all(0 <= m["data_wait_share"] <= 1 and m["images_per_s"] > 0 for m in logged)
