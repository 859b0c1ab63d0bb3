"""DICOM through pydicom, on the real files pydicom ships: pixel values as pydicom's own modality LUT and VOI give
them, MONOCHROME1 inverted, the unusable ones skipped with their reason, and `hpt pretrain`/`hpt eval` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom  # the `medical` extra, which `make test` installs
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from hpt.cli import main
from hpt.core.run_files import SKIPPED
from hpt.data.decode import load_rgb
from hpt.data.files import find_images
from hpt.data.intensity import Window
from hpt.data.screen import problem_with, read_skipped
from hpt.data.window_choice import resolve_window


def _file(name: str) -> Path:
    return Path(get_testdata_file(name))  # files that ship inside the pydicom wheel: no download


def test_a_file_with_a_voi_window_decodes_as_pydicoms_voi_lut():
    """MR_small carries window 600/1600: our 0-255 image is pydicom's apply_voi_lut output rescaled (an affine
    map, fitted here), to within the rounding to whole levels (0.5 each way, and the fit's own error)."""
    path = _file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    reference = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64).ravel()
    ours = np.asarray(load_rgb(path), dtype=np.float64)
    assert ours.shape == (64, 64, 3) and (ours[..., 0] == ours[..., 2]).all()
    slope, intercept = np.polyfit(reference, ours[..., 0].ravel(), 1)
    assert slope > 0 and np.abs(slope * reference + intercept - ours[..., 0].ravel()).max() <= 0.51 + 0.01
    assert len(np.unique(ours)) > 100  # a real window, not a few levels


def test_a_file_without_one_gets_the_dataset_window_on_its_modality_values(tmp_path):
    """CT_small has a rescale (intercept -1024) and no VOI: the auto window is measured on Hounsfield units, the
    values pydicom's modality LUT gives; a window given in HU maps them linearly."""
    path = _file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hounsfield = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    shutil.copy(path, tmp_path / "ct.dcm")
    window = resolve_window(find_images(tmp_path), "auto")
    low, high = np.percentile(hounsfield, (0.5, 99.5))
    assert (window.low, window.high) == pytest.approx((low, high)) and low < 0  # HU, not stored values
    ours = np.asarray(load_rgb(tmp_path / "ct.dcm", Window("fixed", -1000, 1000)))[..., 0].astype(float)
    expected = np.clip(np.floor((hounsfield + 1000) * 255 / 2000 + 0.5), 0, 255)
    assert np.array_equal(ours, expected)


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(_file("MR_small.dcm"))
    normal = np.asarray(load_rgb(_file("MR_small.dcm")), dtype=int)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "inverted.dcm")
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "inverted.dcm"), dtype=int), 255 - normal)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("rtplan.dcm", "DICOM without pixel data"),
        ("MR_truncated.dcm", "truncated or corrupt"),
        ("rtdose.dcm", "multi-frame DICOM (15 frames): not supported"),
        ("JPEG-lossy.dcm", "no installed decoder reads: pip install pylibjpeg"),
    ],
)
def test_unusable_dicom_files_are_named_with_their_reason(name, reason):
    found = problem_with(_file(name))
    assert found is not None and reason in found and "\n" not in found


def test_a_file_that_is_not_dicom_is_named(tmp_path):
    (tmp_path / "fake.dcm").write_bytes(b"not a dicom file at all" * 10)
    assert problem_with(tmp_path / "fake.dcm") == "not a DICOM file"


def test_pretrain_and_eval_on_a_folder_of_dicom_files(tmp_path, capsys, tiny_pretrain):
    """Grey (CT, MR, three encodings), colour (RGB) and unusable files in one folder; two 'classes' for eval."""
    good = {
        "ct": ["CT_small.dcm", "MR_small_bigendian.dcm"],
        "mr": ["MR_small.dcm", "MR_small_RLE.dcm", "SC_rgb_rle.dcm"],
    }
    for split, copies in (("pretrain", 4), ("train", 2), ("test", 1)):
        for label, names in good.items():
            for name in names:
                for i in range(copies):
                    target = tmp_path / split / label / f"{i}-{name}"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(_file(name), target)
    shutil.copy(_file("rtplan.dcm"), tmp_path / "pretrain" / "ct" / "plan.dcm")  # 1 bad of 21: under 5%
    run = tmp_path / "run"
    assert tiny_pretrain(tmp_path / "pretrain", run, 2) == 0
    assert "DICOM without pixel data" in [r for p, r in read_skipped(run / SKIPPED).items() if p.endswith("plan.dcm")]
    evaluate = ["eval", str(run), "--train", str(tmp_path / "train"), "--test", str(tmp_path / "test")]
    assert main([*evaluate, "--workers", "0"]) == 0
    result = json.loads((run / "eval.json").read_text())["knn"]
    assert result["settings"]["classes"] == ["ct", "mr"] and result["settings"]["test_images"] == 5
    capsys.readouterr()
