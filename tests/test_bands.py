"""Multi-band images: 4-band TIFFs made of real photos (RGB + a fourth real band) pretrained from the RGB
ImageNet base, exported and reloaded strictly with 4 input channels; mixed folders keep one band count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import timm
import torch
from safetensors.torch import load_file
from skimage import data as photos

from hpt.backbones import create_backbone
from hpt.backbones.input_channels import adapt_input_conv
from hpt.checkpoints.files import read_provenance
from hpt.checkpoints.sources import load_backbone
from hpt.cli import main
from hpt.core.run_files import SKIPPED
from hpt.data.bands import band_count, dataset_channels
from hpt.data.files import find_images
from hpt.data.screen import problem_with, read_skipped

LITE0 = "timm:tf_efficientnet_lite0"


def _tiles(photo: np.ndarray, extra: np.ndarray, count: int, size: int = 48) -> list[np.ndarray]:
    """`count` size x size tiles of an RGB photo with a fourth band from the same place of another real image."""
    rng = np.random.default_rng(0)
    tiles = []
    for _ in range(count):
        y, x = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        band = extra[y : y + size, x : x + size, None]
        tiles.append(np.concatenate([photo[y : y + size, x : x + size], band], axis=-1))
    return tiles


def _write(folder, tiles) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, tile in enumerate(tiles):  # the 4th sample is a band, not alpha (as GIS tools write it)
        tifffile.imwrite(folder / f"{i:03}.tif", tile, photometric="rgb", extrasamples=["unspecified"])


@pytest.fixture(scope="module")
def four_band(tmp_path_factory):
    root = tmp_path_factory.mktemp("four-band")
    grey = photos.camera()  # 512 x 512, the fourth band of every tile
    astronaut, coffee = photos.astronaut(), photos.coffee()[:400, :512]
    _write(root / "pretrain", _tiles(astronaut, grey, 12) + _tiles(coffee, grey, 12))
    for split, count in (("train", 6), ("test", 4)):
        _write(root / split / "astronaut", _tiles(astronaut, grey, count))
        _write(root / split / "coffee", _tiles(coffee, grey, count))
    return root


def test_an_rgb_base_loads_into_four_channels_by_timms_rule(lite0_file):
    rgb, _ = load_backbone(str(lite0_file), LITE0)
    four, origin = load_backbone(str(lite0_file), LITE0, in_chans=4)
    key = four.input_conv_key
    base, adapted = rgb.native_state_dict()[key], four.native_state_dict()[key]
    assert adapted.shape == (base.shape[0], 4, *base.shape[2:])
    torch.testing.assert_close(adapted, torch.cat([base, base[:, :1]], dim=1) * 3 / 4)  # R G B R, scaled 3/4
    assert origin.load_report.adapted == [f"{key}: 3 -> 4 input channels"]
    # torchvision models get the same rule; the rest of the network is untouched
    resnet = create_backbone("torchvision:resnet18", in_chans=4)
    assert resnet.model.conv1.weight.shape == (64, 4, 7, 7) and resnet(torch.rand(2, 4, 32, 32)).shape == (2, 512)
    assert torch.equal(adapt_input_conv(base, 1), base.sum(dim=1, keepdim=True))


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_pretrain_export_and_eval_with_four_bands(four_band, lite0_file, tmp_path, capsys):
    assert band_count(next((four_band / "pretrain").iterdir())) == 4
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(four_band / "pretrain"), "--out", str(run), "--base", str(lite0_file)]
    args += ["--backbone", LITE0, "--steps", "2", "--batch-size", "8", "--image-size", "32", "--workers", "0"]
    args += ["--monitor-train", str(four_band / "train"), "--monitor-test", str(four_band / "test")]
    assert main([*args, "--set", "mocov2.queue_size=32", "--set", "monitor.label_free_sample=0"]) == 0
    assert "4-band images" in capsys.readouterr().err
    provenance = read_provenance(run / "backbone.safetensors")
    assert [e["step"] for e in provenance["monitor"]] == [0, 1, 2]  # the monitor scored 4-band images too
    assert provenance["data"]["channels"] == 4 and len(provenance["data"]["mean"]) == 4
    assert provenance["base"]["load_report"]["adapted"]  # the RGB base's first convolution, adapted

    model = timm.create_model("tf_efficientnet_lite0", num_classes=0, in_chans=4)
    model.load_state_dict(load_file(run / "backbone.safetensors"), strict=True)  # the export reloads strictly
    assert model.eval()(torch.rand(1, 4, 32, 32)).shape == (1, 1280)

    evaluate = ["eval", str(run), "--train", str(four_band / "train"), "--test", str(four_band / "test")]
    assert main([*evaluate, "--workers", "0"]) == 0
    result = json.loads((run / "eval.json").read_text())["knn"]
    assert result["settings"]["channels"] == 4 and result["settings"]["test_images"] == 8

    # downstream: timm reads the folder with its 4 bands and their statistics; ONNX takes 4 bands; embed draws them
    hub = timm.create_model(f"local-dir:{run}", pretrained=True)
    assert hub.conv_stem.weight.shape[1] == 4 and timm.data.resolve_data_config({}, model=hub)["input_size"] == (
        4,
        32,
        32,
    )
    assert main(["export", str(run), "--format", "onnx"]) == 0
    assert "N x 4 x 32 x 32 normalised images -> N x 1280 features" in capsys.readouterr().out
    out = tmp_path / "embed"
    assert main(["embed", str(run), "--data", str(four_band / "test"), "--out", str(out), "--neighbours", "3"]) == 0
    assert np.load(out / "run.npy").shape == (8, 1280) and (out / "neighbours.png").is_file()


@pytest.mark.slow  # seconds of real work (training): make test-fast leaves it out
def test_an_rgb_teacher_distils_into_an_rgb_base_on_four_bands(four_band, lite0_file, tmp_path, hpt_here):
    """Both the ImageNet teacher's and the base's first convolutions take the 4 bands (timm's rule); the teacher,
    recording no statistics, sees the data's."""
    run = tmp_path / "run"
    result = hpt_here(
        "pretrain", "--data", four_band / "pretrain", "--out", run, "--base", lite0_file, "--backbone", LITE0,
        "--method", "distill", "--teacher", lite0_file, "--set", f"distill.teacher_backbone={LITE0}",
        "--steps", "2", "--batch-size", "8", "--image-size", "32", "--workers", "0",
        "--set", "distill.queue_size=16", "--set", "monitor.label_free_sample=0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    provenance = read_provenance(run / "backbone.safetensors")
    assert provenance["data"]["channels"] == 4
    assert provenance["teacher"]["load_report"]["adapted"] == provenance["base"]["load_report"]["adapted"] != []
    assert "the data's mean/std (it records none)" in " ".join(result.stderr.split())


def test_a_mixed_folder_keeps_the_band_count_most_files_have(four_band, tmp_path, tiny_pretrain):
    """4-band TIFFs with an RGB PNG, a grey PNG (read as RGB: 3 bands), a 1-band array and a cut-off TIFF among
    them: each of those is skipped with its reason, and the run goes on with the 4-band images."""
    import shutil

    from PIL import Image

    folder = tmp_path / "mixed"
    shutil.copytree(four_band / "pretrain", folder)
    Image.fromarray(photos.astronaut()[:32, :32]).save(folder / "rgb.png")
    Image.fromarray(photos.camera()[:32, :32]).save(folder / "grey.png")
    np.save(folder / "one-band.npy", photos.camera()[:32, :32])
    whole = (folder / "000.tif").read_bytes()
    (folder / "cut.tif").write_bytes(whole[: len(whole) // 2])  # a 4-band TIFF cut off by a failed copy
    channels, other = dataset_channels(find_images(folder).paths, "auto", "data")
    assert channels == 4
    assert {p.name: r for p, r in other.items()} == {
        "rgb.png": "3 bands; the dataset has 4 (data.channels)",
        "grey.png": "3 bands; the dataset has 4 (data.channels)",
        "one-band.npy": "1 band; the dataset has 4 (data.channels)",
    }
    run = tmp_path / "run"
    assert tiny_pretrain(folder, run, 1) == 0
    skipped = read_skipped(run / SKIPPED)
    assert {Path(p).name for p in skipped} == {"rgb.png", "grey.png", "one-band.npy", "cut.tif"}
    assert next(r for p, r in skipped.items() if p.endswith("cut.tif")).startswith("truncated or corrupt")


def test_an_array_of_objects_is_refused_and_never_unpickled(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    reason = problem_with(tmp_path / "objects.npy")
    assert reason is not None and "allow_pickle=False" in reason


@pytest.mark.parametrize("policy", ["full", "crop-only", "scan", "rotation"])
def test_every_policy_makes_multi_band_views(policy):
    from hpt.data.views import pretrain_view

    bands = torch.from_numpy(_tiles(photos.astronaut(), photos.camera(), 1, 64)[0]).permute(2, 0, 1).contiguous()
    view = pretrain_view(policy, 32, (0.5,) * 4, (0.25,) * 4)
    out = view(bands)
    assert out.shape == (4, 32, 32) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_band_jitter_scales_each_band_by_its_own_factor():
    from hpt.data.views import BandJitter

    torch.manual_seed(0)
    bands = torch.rand(5, 16, 16) * 0.5 + 0.1  # no clipping at 1.4x
    out = BandJitter(brightness=0.4, contrast=0.0)(bands)
    ratios = out / bands
    per_band = ratios.flatten(1)
    assert torch.allclose(per_band, per_band[:, :1].expand_as(per_band), atol=1e-5)  # one factor per band
    assert ((0.6 <= per_band[:, 0]) & (per_band[:, 0] <= 1.4)).all() and per_band[:, 0].unique().numel() == 5
