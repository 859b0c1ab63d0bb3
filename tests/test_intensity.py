"""High-bit images keep their grey levels: real digits re-encoded at 12 bits (values 0-4095 in 16-bit PNGs) and
at 16 bits in a narrow range decode, through the dataset's `auto` window, to the 8-bit originals; the window is
recorded by a run and applied again by `hpt eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hpt.checkpoints.files import read_provenance
from hpt.cli import main
from hpt.data.decode import load_rgb
from hpt.data.files import find_images
from hpt.data.intensity import FULL_RANGE, Window
from hpt.data.window_choice import resolve_window


def _reencode(source, target, encode) -> None:
    """Every PNG under `source` as a 16-bit PNG under `target` with values `encode(8-bit values)`."""
    for path in sorted(source.rglob("*.png")):
        grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(encode(grey)).astype(np.uint16)).save(out)


TWELVE_BIT = ("12-bit", lambda v: v * 4095 / 255)
NARROW = ("narrow-16-bit", lambda v: 30000 + v * 16)


@pytest.fixture(scope="module")
def high_bit(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("high-bit")
    folders = {}
    for name, encode in (TWELVE_BIT, NARROW):
        for split in ("pretrain", "train", "test"):
            _reencode(digits[split], root / name / split, encode)
        folders[name] = {split: root / name / split for split in ("pretrain", "train", "test")}
    return folders


@pytest.mark.parametrize("name", [TWELVE_BIT[0], NARROW[0]])
def test_the_auto_window_gives_back_the_8_bit_originals(digits, high_bit, name):
    """Every pixel within one grey level of the original (the re-encoding and the window each round once); the
    old full-range mapping leaves both 17 grey levels at most (4096 values / 257 per level)."""
    originals = sorted(digits["train"].rglob("*.png"))
    encoded = sorted(high_bit[name]["train"].rglob("*.png"))
    assert Image.open(encoded[0]).mode.startswith("I")  # really more than 8 bits per value
    window = resolve_window(find_images(high_bit[name]["train"]), "auto")
    assert window.mode == "fixed" and "percentiles" in window.source
    for original, path in zip(originals, encoded):
        expected = np.asarray(Image.open(original).convert("RGB"), dtype=int)
        assert np.abs(np.asarray(load_rgb(path, window), dtype=int) - expected).max() <= 1, path
    levels = {int(v) for path in encoded[:20] for v in np.unique(np.asarray(load_rgb(path, FULL_RANGE)))}
    assert len(levels) <= 17
    assert resolve_window(find_images(digits["train"]), "auto").mode == "full-range"  # 8-bit data: untouched


def test_each_window_mode_maps_values_as_documented(tmp_path):
    values = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "scan.png")
    Image.fromarray(values.astype(np.float32) / 4095).save(tmp_path / "float.tif")
    grey = lambda path, window: np.asarray(load_rgb(path, window))[..., 0].tolist()  # noqa: E731
    assert grey(tmp_path / "scan.png", FULL_RANGE) == [[0, 4], [8, 16]]  # v / 65535 * 255, rounded
    assert grey(tmp_path / "scan.png", Window("per-image")) == [[0, 62], [125, 255]]
    assert grey(tmp_path / "scan.png", Window("fixed", 1000, 2000)) == [[0, 0], [255, 255]]
    assert grey(tmp_path / "float.tif", FULL_RANGE) == [[0, 62], [125, 255]]  # floats: 0-1
    assert resolve_window(find_images(tmp_path), (10.0, 20.0)) == Window("fixed", 10, 20, "data.intensity")


def test_a_run_records_its_window_and_hpt_eval_applies_it(high_bit, tmp_path, capsys, tiny_pretrain):
    folders = high_bit[TWELVE_BIT[0]]
    run = tmp_path / "run"
    assert tiny_pretrain(folders["pretrain"], run, 2) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "high-bit images: intensity window [0, 4095]" in said and "8 images beside two of their" in said
    with Image.open(run / "views.png") as grid:  # the first image as evaluated, after the window: white strokes
        first = np.asarray(grid.convert("L"))[2:98, 2:98]  # 16 px shown at 96, after a 2-px border
    assert first.max() >= 128 and first.min() <= 5  # at the 16-bit range: black, 16 of 255 at most
    recorded = read_provenance(run / "backbone.safetensors")["data"]["intensity"]
    assert recorded["mode"] == "fixed" and (recorded["low"], recorded["high"]) == (0.0, 4095.0)

    evaluate = ["eval", str(run), "--train", str(folders["train"]), "--test", str(folders["test"]), "--workers", "0"]
    assert main(evaluate) == 0
    assert json.loads((run / "eval.json").read_text())["knn"]["settings"]["intensity"] == recorded
    assert main([*evaluate, "--intensity", "full-range", "--out", str(tmp_path / "full.json")]) == 0
    assert json.loads((tmp_path / "full.json").read_text())["knn"]["settings"]["intensity"]["mode"] == "full-range"


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_the_imagenet_base_scores_high_bit_copies_as_it_scores_the_originals(digits, high_bit, lite0_file, tmp_path):
    """The real base, kNN and linear probe at 32 px with no flag: within one point of the 8-bit originals (the
    decoded pixels differ by at most one grey level, so the features barely move; 200 test images, a point is
    two of them)."""
    from hpt.eval.runner import EvalOptions, evaluate

    def scores(folders, name):
        options = EvalOptions("knn", "timm:tf_efficientnet_lite0", image_size=32, num_workers=0)
        knn = evaluate(str(lite0_file), str(folders["train"]), str(folders["test"]), options, tmp_path / f"{name}.json")
        options = EvalOptions("linear", "timm:tf_efficientnet_lite0", image_size=32, num_workers=0)
        linear = evaluate(
            str(lite0_file), str(folders["train"]), str(folders["test"]), options, tmp_path / f"{name}.json"
        )
        return knn["metrics"]["knn_top1_k20"], linear["metrics"]["linear_top1"]

    original = scores(digits, "original")
    assert original[0] > 0.5 and original[1] > 0.5  # the base is a real one
    for name in (TWELVE_BIT[0], NARROW[0]):
        copy = scores(high_bit[name], name)
        assert abs(copy[0] - original[0]) <= 0.01 and abs(copy[1] - original[1]) <= 0.01, (name, copy, original)


def test_a_12_bit_rgb_tiff_goes_through_the_window_too(tmp_path):
    """PIL would read a 16-bit RGB TIFF at 8 bits with its own scaling (value / 257: a 12-bit photo would be
    left 16 levels per channel); hpt reads it with tifffile, through the dataset's window."""
    import tifffile
    from skimage import data as photos

    twelve_bit = np.round(photos.astronaut()[:64, :64].astype(np.float64) * 4095 / 255)
    tifffile.imwrite(tmp_path / "photo.tif", twelve_bit.astype(np.uint16), photometric="rgb")
    window = resolve_window(find_images(tmp_path), "auto")
    decoded = np.asarray(load_rgb(tmp_path / "photo.tif", window), dtype=int)
    low, high = window.low, window.high  # the photo's 0.5-99.5th percentiles, in 12-bit values
    expected = np.clip(np.floor((twelve_bit - low) * 255 / (high - low) + 0.5), 0, 255)
    assert np.array_equal(decoded, expected.astype(int)) and len(np.unique(decoded)) > 200
