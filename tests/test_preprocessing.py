"""Raw pixels in, the features hpt's own evaluation computes out: `hpt.preprocessing(RUN)` on raw arrays, the
model card's plain-NumPy code, and ONNX and TorchScript files exported `--with-preprocessing`, each against `hpt
embed`'s features of the same files. Real WorldView tiles (uint16, band-sequential as shipped, four of their
eight bands taken) and 12-bit scans (real digits in 16-bit PNGs, read as RGB)."""

from __future__ import annotations

import re
from pathlib import Path

import dgsamples
import numpy as np
import onnxruntime
import pytest
import tifffile
import timm
import torch
from PIL import Image

import hpt
from hpt.data import builtin

TOLERANCE = 1e-4
"""Of the features' largest value: the same float32 network summing in another order (one image against a batch,
onnxruntime's kernels against PyTorch's) differs by ~1e-6 relative per layer; a wrong input is off by far more."""
SIZE = 32
WORLDVIEW = next(Path(dgsamples.__file__).parent.glob("wv2_longmont_1k/*_MUL/*.TIF"))


@pytest.fixture(scope="module")
def aerial(tmp_path_factory):
    """A tiny run on 32 x 32 band-sequential tiles of the WorldView-2 scene (data.bands 7, 5, 3, 2), and hpt
    embed's features of 12 more tiles: the reference every path is held to."""
    from hpt.cli import main

    root = tmp_path_factory.mktemp("aerial")
    planes = tifffile.imread(WORLDVIEW)  # 8 x 501 x 500
    corners = [(y, x) for y in range(0, 480, SIZE) for x in range(0, 480, SIZE)]
    for i, (y, x) in enumerate(corners[:44]):
        folder = root / ("pretrain" if i < 32 else "held")
        folder.mkdir(exist_ok=True)
        tile = planes[:, y : y + SIZE, x : x + SIZE]
        tifffile.imwrite(folder / f"{i:02}.tif", tile, photometric="minisblack", planarconfig="separate")
    run = root / "run"
    args = ["pretrain", "--data", str(root / "pretrain"), "--out", str(run), "--backbone", "timm:test_resnet"]
    args += ["--steps", "2", "--batch-size", "8", "--image-size", str(SIZE), "--workers", "0", "--bands", "7,5,3,2"]
    assert main([*args, "--set=mocov2.queue_size=16", "--set=monitor.label_free_sample=0"]) == 0
    return run, _embedded(run, root / "held", root / "embed")


def _embedded(run: Path, data: Path, out: Path) -> tuple[list[Path], np.ndarray]:
    from hpt.cli import main

    assert main(["embed", str(run), "--data", str(data), "--out", str(out), "--queries", "1", "--neighbours", "1"]) == 0
    paths = [Path(line) for line in (out / "paths.txt").read_text().splitlines()]
    return paths, np.load(out / "run.npy")


def _close(got: np.ndarray, expected: np.ndarray) -> float:
    difference = float(np.abs(got - expected).max())
    assert difference <= TOLERANCE * max(1.0, float(np.abs(expected).max())), difference
    return difference


def test_preprocessing_on_raw_arrays_gives_hpts_features(aerial):
    """The user's path: tifffile's raw uint16 planes as H x W x 8, `hpt.preprocessing`, the timm folder."""
    run, (paths, expected) = aerial
    prepare = hpt.preprocessing(run)
    assert prepare == hpt.preprocessing(run / "backbone.safetensors")  # config.json and the provenance agree
    model = timm.create_model(f"local-dir:{run}", pretrained=True).eval()
    raw = [tifffile.imread(path).transpose(1, 2, 0) for path in paths]  # as stored: 8 x H x W
    with torch.no_grad():
        got = torch.cat([model(prepare(tile)[None]) for tile in raw]).numpy()
        from_files = torch.cat([model(prepare(path)[None]) for path in paths]).numpy()
    _close(got, expected)
    _close(from_files, expected)
    unrounded = hpt.preprocessing(run, round_to_8_bits=False)
    with torch.no_grad():
        floats = torch.cat([model(unrounded(tile)[None]) for tile in raw]).numpy()
    assert np.abs(floats - expected).max() > 0  # the model never saw unrounded inputs: measured in benchmarks/


def test_the_model_cards_numpy_code_gives_the_same_input(aerial):
    run, (paths, _) = aerial
    card = (run / "README.md").read_text()
    code = re.search(r"```python\n(import numpy as np\n.*?)```", card, re.S)
    assert code is not None, card
    scope: dict = {}
    exec(code.group(1), scope)  # the card's own text, as a user would paste it
    prepare = hpt.preprocessing(run)
    for path in paths[:4]:
        tile = tifffile.imread(path).transpose(1, 2, 0)
        assert np.allclose(scope["preprocess"](tile), prepare(tile).numpy(), atol=1e-6)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_with_preprocessing_takes_raw_uint16_tiles(aerial, fmt, capsys):
    from hpt.cli import main

    run, (paths, expected) = aerial
    out = run.parent / f"raw.{fmt}"
    args = ["export", str(run), "--format", fmt, "--with-preprocessing", "--raw-type", "uint16", "--raw-bands", "8"]
    assert main([*args, "--out", str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert f"N x {SIZE} x {SIZE} x 8 raw uint16 values" in said and "bands [7, 5, 3, 2]" in said
    batch = np.stack([tifffile.imread(path).transpose(1, 2, 0) for path in paths])  # N x 32 x 32 x 8 uint16
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"raw": batch})[0]
    else:
        got = torch.jit.load(str(out))(torch.from_numpy(batch)).detach().numpy()
    _close(got, expected)


def test_export_with_preprocessing_asks_for_what_it_needs(aerial, hpt_here):
    run, _ = aerial
    missing = hpt_here("export", run, "--format", "onnx", "--with-preprocessing")
    assert missing.returncode == 2 and "needs --raw-type" in missing.stderr
    alone = hpt_here("export", run, "--format", "onnx", "--raw-type", "uint16")
    assert alone.returncode == 2 and "add --with-preprocessing" in alone.stderr
    wrong = hpt_here("export", run, "--format", "onnx", "--with-preprocessing", "--raw-type", "complex64")
    assert wrong.returncode == 2 and "expected one of uint8, uint16" in wrong.stderr


def test_grey_12_bit_scans_through_the_rgb_path(tmp_path):
    """A 3-channel model on 12-bit grey PNGs: a raw H x W array is windowed, rounded, replicated to RGB and
    resized by PIL as hpt reads the file (28 px digits to 16 px: the resize is part of the path here)."""
    from hpt.cli import main

    folders = builtin.write_splits("mnist-5k", tmp_path / "digits", unlabelled=64, per_class=1)
    twelve = tmp_path / "twelve"
    for split, folder in folders.items():
        for path in sorted(folder.rglob("*.png")):
            grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
            target = twelve / split / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(grey * 4095 / 255).astype(np.uint16)).save(target)
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(twelve / "pretrain"), "--out", str(run), "--backbone", "timm:test_resnet"]
    args += ["--steps", "1", "--batch-size", "8", "--image-size", "16", "--workers", "0"]
    assert main([*args, "--set=mocov2.queue_size=16", "--set=monitor.label_free_sample=0"]) == 0
    paths, expected = _embedded(run, twelve / "test", tmp_path / "embed")
    prepare, model = hpt.preprocessing(run), timm.create_model(f"local-dir:{run}", pretrained=True).eval()
    assert prepare.decoding.window.mode == "fixed" and prepare.decoding.channels == 3
    with torch.no_grad():
        got = torch.cat([model(prepare(np.asarray(Image.open(p)))[None]) for p in paths]).numpy()
    _close(got, expected)
