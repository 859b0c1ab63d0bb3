"""Multi-band images: 4-band TIFFs made of real photos (RGB + a fourth real band) pretrained from the RGB
ImageNet base, exported and reloaded strictly with 4 input channels; mixed folders keep one band count. Real
WorldView scenes (PyPI dgsamples) as shipped: band-sequential and pixel-interleaved layouts read alike, GDAL
no-data as missing values, `data.bands` taken in its order through training, `views.png` and `hpt eval`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dgsamples
import numpy as np
import pytest
import tifffile
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data as photos

from hpt.backbones import create_backbone
from hpt.backbones.input_channels import adapt_input_conv
from hpt.checkpoints.files import read_provenance
from hpt.checkpoints.sources import load_backbone
from hpt.cli import main
from hpt.core.run_files import SKIPPED
from hpt.data.bands import GDAL_NODATA, band_count, dataset_channels, header_shape, load_bands, read_bands
from hpt.data.decode import Decoding
from hpt.data.files import ImageList, find_images
from hpt.data.intensity import Window
from hpt.data.screen import ALL_NON_FINITE, problem_with, read_skipped
from hpt.data.window_choice import resolve_window

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
    # the fixture's train and test hold the same few tiles: this test is of the bands, so the overlap is allowed
    allow = ["--set", "monitor.allow_overlap=true"]
    assert main([*args, "--set", "mocov2.queue_size=32", "--set", "monitor.label_free_sample=0", *allow]) == 0
    assert "4-band images" in capsys.readouterr().err
    provenance = read_provenance(run / "backbone.safetensors")
    assert [e["step"] for e in provenance["monitor"]] == [0, 1, 2]  # the monitor scored 4-band images too
    assert provenance["data"]["channels"] == 4 and len(provenance["data"]["mean"]) == 4
    assert provenance["base"]["load_report"]["adapted"]  # the RGB base's first convolution, adapted

    model = timm.create_model("tf_efficientnet_lite0", num_classes=0, in_chans=4)
    model.load_state_dict(load_file(run / "backbone.safetensors"), strict=True)  # the export reloads strictly
    assert model.eval()(torch.rand(1, 4, 32, 32)).shape == (1, 1280)

    evaluate = ["eval", str(run), "--train", str(four_band / "train"), "--test", str(four_band / "test")]
    assert main([*evaluate, "--workers", "0", "--allow-overlap"]) == 0
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


WORLDVIEW = Path(dgsamples.__file__).parent
"""Real WorldView-2/3 scenes as DigitalGlobe ships them (PyPI dgsamples): 8-band, uint16, band-sequential."""
PLANAR_SCENES = sorted(WORLDVIEW.glob("wv*_longmont_1k/*_MUL/*.TIF")) + sorted(WORLDVIEW.glob("wv3*/*_SWR/*.TIF"))
INTERLEAVED_SCENE = WORLDVIEW / "bayou_chip" / "extract_test.tif"  # pixel-interleaved, GDAL_NODATA 'nan'


def test_worldview_scenes_read_as_shipped_band_by_band(caplog):
    """Each band-sequential scene (PlanarConfiguration 2 in its header) reads as H x W x 8 whose band b is the
    file's plane b; the pixel-interleaved one as stored. Its GDAL_NODATA 'nan' (which tifffile cannot cast to
    uint16) is no longer logged, and no pixel of an integer file is NaN."""
    assert len(PLANAR_SCENES) == 3
    for scene in PLANAR_SCENES:
        with tifffile.TiffFile(scene) as tiff:
            assert tiff.pages.first.planarconfig == 2
            planes = tiff.asarray()  # 8 x H x W, as stored
        values = read_bands(scene)
        assert values.shape == (*planes.shape[1:], 8) and values.dtype == np.uint16
        assert all(np.array_equal(values[..., b], planes[b]) for b in range(8))
        assert band_count(scene) == 8 and header_shape(scene) == ((*planes.shape[1:], 8), np.dtype("uint16"))
    with caplog.at_level(logging.WARNING):
        values = read_bands(INTERLEAVED_SCENE)
        assert band_count(INTERLEAVED_SCENE) == 8 and problem_with(INTERLEAVED_SCENE) is None
    assert np.array_equal(values, tifffile.imread(INTERLEAVED_SCENE)) and values.shape == (174, 246, 8)
    assert not [r for r in caplog.records if "GDAL_NODATA" in r.getMessage()]


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_both_layouts_stripped_or_tiled_read_the_same_pixels(tmp_path, dtype):
    """A tile of a real scene written four ways (band-sequential or interleaved, stripped or tiled): each reads as
    the same H x W x C pixels, and decodes through the window to the same uint8 bands."""
    planes = tifffile.imread(PLANAR_SCENES[0])[:, 100:164, 200:248].astype(dtype)  # 8 x 64 x 48
    if dtype == np.float32:
        planes /= 2047.0  # reflectance-like floats
    expected = planes.transpose(1, 2, 0)
    written = {
        "planar-strips.tif": dict(data=planes, planarconfig="separate"),
        "planar-tiles.tif": dict(data=planes, planarconfig="separate", tile=(16, 16)),
        "interleaved-strips.tif": dict(data=expected, planarconfig="contig"),
        "interleaved-tiles.tif": dict(data=expected, planarconfig="contig", tile=(16, 16)),
    }
    window = Window("fixed", float(expected.min()), float(expected.max()))
    decoded = []
    for name, how in written.items():
        data = how.pop("data")
        tifffile.imwrite(tmp_path / name, data, photometric="minisblack", **how)
        assert np.array_equal(read_bands(tmp_path / name), expected), name
        decoded.append(load_bands(tmp_path / name, window))
    assert all(torch.equal(d, decoded[0]) for d in decoded) and decoded[0].shape == (8, 64, 48)


def test_gdal_nodata_pixels_are_missing_values(tmp_path):
    """A tile whose first rows carry the GDAL_NODATA value (0 in uint16, -9999 in int16): those pixels are NaN,
    left out of the measured window (said in its source), filled with data.nan_fill; a tile of nothing but no-data
    is skipped."""
    planes = tifffile.imread(PLANAR_SCENES[0])[:, :32, :32]
    for dtype, nodata in ((np.uint16, 0), (np.int16, -9999)):
        tile = planes.transpose(1, 2, 0).astype(dtype)
        tile[:4] = nodata
        path = tmp_path / f"{np.dtype(dtype).name}.tif"
        nodata_tag = [(GDAL_NODATA, "s", 0, str(nodata), True)]
        tifffile.imwrite(path, tile, photometric="minisblack", planarconfig="contig", extratags=nodata_tag)
        values = read_bands(path)
        assert np.isnan(values[:4]).all() and np.array_equal(values[4:], tile[4:].astype(values.dtype))
        window = resolve_window(ImageList([path], None, None), "auto", fill=100.0)
        assert f"{4 * 32 * 8} no-data/NaN/inf values in 1 files left out" in window.source
        assert window.low >= tile[4:].min()  # the no-data value would have been the low end
        low_filled = np.floor((100.0 - window.low) * 255 / (window.high - window.low) + 0.5).clip(0, 255)
        assert (load_bands(path, window)[:, :4] == low_filled).all()
    empty = np.full((16, 16, 8), 0, dtype=np.uint16)
    nodata_tag = [(GDAL_NODATA, "s", 0, "0", True)]
    tifffile.imwrite(
        tmp_path / "empty.tif", empty, photometric="minisblack", planarconfig="contig", extratags=nodata_tag
    )
    assert problem_with(tmp_path / "empty.tif") == ALL_NON_FINITE


def test_data_bands_take_bands_in_their_order(tmp_path):
    """`data.bands` [5, 3, 2] of a real 8-band scene is an RGB image of those planes (the colour views apply);
    [7, 5] a 2-band tensor; a 4-band file lacks band 7 and is skipped with that reason."""
    planes = tifffile.imread(PLANAR_SCENES[0])[:, :40, :40]
    tifffile.imwrite(tmp_path / "eight.tif", planes, photometric="minisblack", planarconfig="separate")
    tifffile.imwrite(tmp_path / "four.tif", planes[:4], photometric="minisblack", planarconfig="separate")
    window = Window("fixed", float(planes.min()), float(planes.max()))
    every = load_bands(tmp_path / "eight.tif", window)
    rgb = Decoding(window, 3, (5, 3, 2))(tmp_path / "eight.tif")
    assert isinstance(rgb, Image.Image) and rgb.mode == "RGB"
    assert np.array_equal(np.asarray(rgb), every[[4, 2, 1]].permute(1, 2, 0).numpy())
    two = Decoding(window, 2, (7, 5))(tmp_path / "eight.tif")
    assert isinstance(two, torch.Tensor) and torch.equal(two, every[[6, 4]])
    channels, other = dataset_channels([tmp_path / "eight.tif", tmp_path / "four.tif"], "auto", "data", (7, 5))
    assert channels == 2 and {p.name: r for p, r in other.items()} == {"four.tif": "4 bands; data.bands takes band 7"}
    assert Decoding.from_dict(Decoding(window, 2, (7, 5)).to_dict()) == Decoding(window, 2, (7, 5))


@pytest.fixture(scope="module")
def worldview_tiles(tmp_path_factory):
    """48 x 48 band-sequential tiles cut from the WorldView-2 and -3 scenes, written as GDAL writes
    INTERLEAVE=BAND: `pretrain/` (both scenes), `train/` and `test/` (one class a scene)."""
    root = tmp_path_factory.mktemp("worldview")
    scenes = {"wv2": tifffile.imread(PLANAR_SCENES[0]), "wv3": tifffile.imread(PLANAR_SCENES[1])}
    for name, planes in scenes.items():
        corners = [(y, x) for y in range(0, planes.shape[1] - 48, 48) for x in range(0, planes.shape[2] - 48, 48)]
        for i, (y, x) in enumerate(corners[:28]):
            split = "pretrain" if i < 16 else "train" if i < 24 else "test"
            folder = root / split / (name if split != "pretrain" else "")
            folder.mkdir(parents=True, exist_ok=True)
            tile = planes[:, y : y + 48, x : x + 48]
            tifffile.imwrite(folder / f"{name}-{i:02}.tif", tile, photometric="minisblack", planarconfig="separate")
    return root


def test_pretrain_and_eval_take_the_chosen_bands_of_band_sequential_tiles(worldview_tiles, tmp_path, hpt_here):
    """A run on tiles as WorldView ships them, four of their eight bands (NIR1, red, green, blue), drawn as true
    colour: it says so, draws views.png, records the bands, and `hpt eval` and the export take the same four."""
    run = tmp_path / "run"
    result = hpt_here(
        "pretrain", "--data", worldview_tiles / "pretrain", "--out", run, "--backbone", "timm:test_resnet",
        "--steps", "2", "--batch-size", "8", "--image-size", "32", "--workers", "0",
        "--set", "data.bands=[7,5,3,2]", "--set", "data.preview_bands=[5,3,2]", "--set", "mocov2.queue_size=16",
        "--set", "monitor.label_free_sample=0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert (
        "4-band images" in said and "8 images beside two of their training views (bands 5, 3, 2 as red, green" in said
    )
    with Image.open(run / "views.png") as grid:
        assert grid.mode == "RGB" and np.asarray(grid).std() > 5  # a picture, not a blank
    provenance = read_provenance(run / "backbone.safetensors")
    assert provenance["data"]["bands"] == [7, 5, 3, 2] and provenance["data"]["channels"] == 4
    assert json.loads((run / "config.json").read_text())["hpt"]["decoding"]["bands"] == [7, 5, 3, 2]
    evaluated = hpt_here("eval", run, "--train", worldview_tiles / "train", "--test", worldview_tiles / "test",
                         "--workers", "0")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    settings = json.loads((run / "eval.json").read_text())["knn"]["settings"]
    assert settings["bands"] == [7, 5, 3, 2] and settings["channels"] == 4 and settings["test_images"] == 8


def test_channel_pages_are_bands_and_a_stack_is_named(tmp_path):
    """ImageJ's and OME's channel axis (one page a band) reads as bands: 4 of them a 4-band image, 3 of them an RGB
    one (not the first page alone, as PIL would read it); pages of a time series are named, not called damaged."""
    planes = tifffile.imread(PLANAR_SCENES[0])[:4, :24, :24]
    tifffile.imwrite(tmp_path / "four.tif", planes, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "three.ome.tif", planes[:3], ome=True, metadata={"axes": "CYX"})
    assert band_count(tmp_path / "four.tif") == 4
    assert np.array_equal(read_bands(tmp_path / "four.tif"), planes.transpose(1, 2, 0))
    window = Window("fixed", float(planes.min()), float(planes.max()))
    rgb = np.asarray(Decoding(window)(tmp_path / "three.ome.tif"))
    assert np.array_equal(rgb, load_bands(tmp_path / "four.tif", window)[:3].permute(1, 2, 0).numpy())
    tifffile.imwrite(tmp_path / "series.tif", np.stack([planes, planes]), imagej=True, metadata={"axes": "TCYX"})
    assert problem_with(tmp_path / "series.tif").startswith("a TIFF series of shape (2, 4, 24, 24) (axes TCYX)")
