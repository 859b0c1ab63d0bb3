"""DICOM through pydicom, on the real files pydicom and pydicom-data ship (CR, CT, MR, US, NM; eight transfer
syntaxes): pixel values as pydicom's own modality LUT and VOI give them, MONOCHROME1 inverted, screening from the
header alone, the unusable ones skipped with their reason and every one listed when a start is refused, a window per
modality, and `hpt pretrain`/`hpt eval` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom  # the `medical` extra, which `make test` installs
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from hpt.cli import main
from hpt.core.run_files import SKIPPED
from hpt.data import dicom
from hpt.data.decode import load_rgb
from hpt.data.files import find_images
from hpt.data.intensity import Window
from hpt.data.screen import TooManyUnusable, problem_with, read_skipped
from hpt.data.window_choice import PERCENTILES, PIXELS_PER_IMAGE, resolve_window
from hpt.errors import HptError

SHIPPED = Path(get_testdata_file("JPEG-LL.dcm")).parent  # pydicom-data's 68 files: no download


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
        ("MR_truncated.dcm", "truncated or corrupt (the file ends 62 bytes early)"),  # 9630 bytes of 9692
        ("emri_small_jpeg_2k_lossless_too_short.dcm", "truncated or corrupt (its pixel data is cut short)"),
        ("badVR.dcm", "truncated or corrupt (NumberOfFrames is '1A', not a number)"),
    ],
)
def test_unusable_dicom_files_are_named_with_their_reason(name, reason):
    found = problem_with(_file(name))
    assert found is not None and reason in found and "\n" not in found


def test_screening_agrees_with_decoding_on_every_shipped_file_it_can_judge_from_the_header():
    """Every one of pydicom's and pydicom-data's files: screening (the header alone) accepts a file exactly when
    hpt decodes it (every frame of a multi-frame one), but for the two whose compressed stream is broken inside
    (what only decoding finds; training meets them and another image stands in). The decoders of the `dicom`
    extra read every compressed syntax here."""
    files = sorted({*SHIPPED.glob("*.dcm"), *Path(get_testdata_file("CT_small.dcm")).parent.glob("*.dcm")})
    disagree, compressed, frames = {}, set(), 0
    for path in files:
        screened = problem_with(path)
        count = dicom.read_header(path).frames if screened is None else 1
        frames += count if count > 1 else 0
        try:
            for frame in range(count):
                load_rgb(path, frame=frame if count > 1 else None)
            decoded = None
        except Exception as exc:  # noqa: BLE001 - what decoding says, to compare
            decoded = str(exc)
        if (screened is None) != (decoded is None):
            disagree[path.name] = decoded
        if (
            screened is None
            and pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
        ):
            compressed.add(str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.name))
    assert len(files) >= 140 and frames >= 200  # every frame of 30-odd multi-frame files, up to 120 frames each
    assert disagree.keys() == {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"}, disagree
    assert all(reason.startswith("cannot decode its pixel data (compressed as") for reason in disagree.values())
    assert {"JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
            "JPEG 2000 Image Compression (Lossless Only)", "JPEG-LS Lossless Image Compression", "RLE Lossless",
            "JPEG Baseline (Process 1)"} <= compressed  # fmt: skip


def test_a_stream_broken_inside_passes_screening_and_stops_decoding(tmp_path):
    """The proof that screening decodes nothing: a real JPEG 2000 file whose compressed bytes are garbled (every
    length kept) is accepted from its header, and only decoding finds it."""
    ds = pydicom.dcmread(_file("JPEG2000.dcm"))
    data = bytearray(ds.PixelData)
    third = len(data) // 3
    data[third : 2 * third] = np.random.default_rng(0).integers(0, 256, third, dtype=np.uint8).tobytes()
    ds.PixelData = bytes(data)
    ds.save_as(tmp_path / "garbled.dcm")
    assert problem_with(tmp_path / "garbled.dcm") is None
    with pytest.raises(dicom.DicomProblem, match="cannot decode its pixel data .compressed as JPEG 2000"):
        load_rgb(tmp_path / "garbled.dcm")


def test_a_syntax_no_decoder_reads_names_the_extra(tmp_path):
    """Without the decoders (hidden from a fresh interpreter, as on a machine without the extra) a JPEG Lossless
    file is named with what to install; a video syntax pydicom cannot decode at all is named as such."""
    hide = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pylibjpeg', 'libjpeg', 'openjpeg', 'gdcm'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from pathlib import Path\nfrom hpt.data.screen import problem_with\n"
        f"print(problem_with(Path({str(_file('JPEG-LL.dcm'))!r})))\n"
    )
    said = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=120)
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip() == (
        "compressed as JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1]), "
        f"which no installed decoder reads: {dicom.DECODERS}"
    )
    ds = pydicom.dcmread(_file("JPEG-LL.dcm"))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG4HP41
    ds.save_as(tmp_path / "video.dcm", enforce_file_format=False)
    assert problem_with(tmp_path / "video.dcm") == (
        "compressed as MPEG-4 AVC/H.264 High Profile / Level 4.1, which pydicom has no decoder for"
    )


def test_a_refused_folder_lists_every_file_with_its_reason(tmp_path):
    """pydicom's own test files as they ship, a fifth or so of which cannot be used (no pixel data, not DICOM, cut
    short), more than data.max_bad_fraction's 5%: the refusal counts them by reason, and the list it writes holds
    every one, each reason the one screening gives that file alone."""
    with pytest.raises(TooManyUnusable) as refused:
        find_images(Path(get_testdata_file("CT_small.dcm")).parent)
    said = str(refused.value)
    bad = refused.value.bad
    assert f"{len(bad)} of {refused.value.total} files cannot be used" in said and "\n" not in said
    kinds = {reason.split(" (")[0] for reason in bad.values()}
    assert {"DICOM without pixel data", "not a DICOM file", "truncated or corrupt"} <= kinds
    assert f"{sum(r == 'not a DICOM file' for r in bad.values())} x not a DICOM file" in said
    listed = refused.value.listed_in(tmp_path / "skipped.jsonl")
    assert str(listed).endswith(f"every one with its reason in {tmp_path / 'skipped.jsonl'}")
    skipped = read_skipped(tmp_path / "skipped.jsonl")
    assert len(skipped) == len(bad) > 0.05 * refused.value.total
    assert skipped == {path: problem_with(Path(path)) for path in skipped}


def test_a_multi_frame_file_is_one_image_a_frame(tmp_path):
    """An MR of 10 frames, an enhanced CT of 2, an ultrasound cine of 2 (palette colour) and a single CT: 15 images,
    each frame of the MR exactly the dataset window of pydicom's own frame (its modality LUT: none), every frame
    of a file in one group."""
    for name in ("emri_small.dcm", "eCT_Supplemental.dcm", "OBXXXX1A_2frame.dcm", "CT_small.dcm"):
        shutil.copy(_file(name), tmp_path / name)
    images = find_images(tmp_path)
    assert len(images) == 15 and images.frames is not None
    counts = {path.name: images.paths.count(path) for path in set(images.paths)}
    assert counts == {"emri_small.dcm": 10, "eCT_Supplemental.dcm": 2, "OBXXXX1A_2frame.dcm": 2, "CT_small.dcm": 1}
    groups = images.groups()
    assert all((groups[i] == groups[j]) == (images.paths[i] == images.paths[j]) for i in range(15) for j in range(15))
    window = Window("fixed", 0, 1000)
    frames = pydicom.dcmread(_file("emri_small.dcm")).pixel_array  # 10 x 64 x 64
    for frame in range(10):
        ours = np.asarray(load_rgb(tmp_path / "emri_small.dcm", window, frame))[..., 0]
        assert np.array_equal(ours, window.to_uint8(frames[frame].astype(np.float64), 4095))


def test_an_enhanced_ct_frame_goes_through_its_functional_groups():
    """eCT_Supplemental keeps its rescale (intercept -1024) and its window in the shared functional groups, not at
    the top level: each frame is in Hounsfield units through that window, as pydicom's own modality LUT and VOI
    give it once those attributes are copied up (done here by hand), to within the rounding to whole levels."""
    path = _file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    groups = ds.SharedFunctionalGroupsSequence[0]
    transform, voi = groups.PixelValueTransformationSequence[0], groups.FrameVOILUTSequence[0]
    assert "RescaleIntercept" not in ds and float(transform.RescaleIntercept) == -1024
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = transform.RescaleSlope, transform.RescaleIntercept, "HU"
    ds.WindowCenter, ds.WindowWidth = voi.WindowCenter, voi.WindowWidth
    assert dicom.read_header(path).own_window and dicom.read_header(path).frames == 2
    for frame in range(2):
        reference = apply_voi_lut(apply_modality_lut(ds.pixel_array[frame], ds), ds).astype(np.float64).ravel()
        ours = np.asarray(load_rgb(path, frame=frame), dtype=np.float64)[..., 0].ravel()
        slope, intercept = np.polyfit(reference, ours, 1)
        assert slope > 0 and np.abs(slope * reference + intercept - ours).max() <= 0.51 + 0.01


def test_a_validation_split_keeps_the_frames_of_a_file_together():
    """Checked by file identity, apart from the splitting code: 6 files of 1-9 frames in two classes, a fifth held
    out of each class, under 20 seeds: no file has frames on both sides, and every class gives at least one."""
    from hpt.eval.protocols import Split, split_validation

    sizes, labels = [1, 9, 4, 2, 7, 3], [0, 0, 0, 1, 1, 1]
    files = torch.tensor([f for f, n in enumerate(sizes) for _ in range(n)])
    targets = torch.tensor([labels[f] for f in files.tolist()])
    for seed in range(20):
        fit, val = split_validation(Split(torch.randn(len(files), 4), targets, files), 0.2, seed)
        assert set(fit.groups.tolist()).isdisjoint(val.groups.tolist())
        assert len(fit.targets) + len(val.targets) == len(files) and set(val.targets.tolist()) == {0, 1}


def _mixed(folder: Path) -> Path:
    """Real files of three modalities: CT (Hounsfield units, no VOI), NM (counts, no VOI), MR (its own VOI)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        for prefix, name in (("ct", "CT_small.dcm"), ("nm", "JPEG-LL.dcm"), ("mr", "MR_small.dcm")):
            shutil.copy(_file(name), folder / f"{prefix}{i}.dcm")
    return folder


def test_modalities_that_use_the_dataset_window_get_one_each(tmp_path):
    """CT and NM files without a VOI of their own: each modality's window is the 0.5-99.5th percentiles of its own
    values (computed here with pydicom's modality LUT and numpy, from every PIXELS_PER_IMAGE-th value as the window
    samples a large image), each file goes through its own, and the window
    survives the provenance's round trip. MR brings its own VOI and takes none."""
    window = resolve_window(find_images(_mixed(tmp_path / "mixed")), "auto")
    assert [name for name, _ in window.by_modality] == ["CT", "NM"]
    for name, file in (("CT", "CT_small.dcm"), ("NM", "JPEG-LL.dcm")):
        ds = pydicom.dcmread(_file(file))
        values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
        low, high = np.percentile(values.ravel()[:: max(1, values.size // PIXELS_PER_IMAGE)], PERCENTILES)
        own = window.for_modality(name)
        assert (own.low, own.high) == pytest.approx((low, high))
        expected = np.clip(np.floor((values - low) * 255 / (high - low) + 0.5), 0, 255)
        assert np.array_equal(np.asarray(load_rgb(_file(file), window))[..., 0], expected)
    assert Window.from_dict(json.loads(json.dumps(window.to_dict()))) == window
    assert "DICOM, a window per modality: CT [" in window.describe()


def test_a_window_given_in_values_is_refused_for_mixed_modalities(tmp_path):
    images = find_images(_mixed(tmp_path / "mixed"))
    with pytest.raises(HptError, match=r"come from 2 modalities \(3 CT, 3 NM\): set data.intensity auto"):
        resolve_window(images, (-1000, 1000))
    allowed = resolve_window(images, (-1000, 1000), mixed_modalities="allow")
    assert (allowed.low, allowed.high, allowed.by_modality) == (-1000, 1000, ())


def test_a_file_that_is_not_dicom_is_named(tmp_path):
    (tmp_path / "fake.dcm").write_bytes(b"not a dicom file at all" * 10)
    assert problem_with(tmp_path / "fake.dcm") == "not a DICOM file"


def test_pretrain_and_eval_on_a_folder_of_dicom_files(tmp_path, capsys, tiny_pretrain):
    """Grey (CT, MR, NM compressed as JPEG Lossless; four encodings), colour (RGB), a 10-frame MR and unusable files
    in one folder; two 'classes' for eval. CT, NM and the 10-frame MR bring no VOI: each modality gets its own
    window, said, recorded, and used by eval; each frame is an image."""
    good = {
        "ct": ["CT_small.dcm", "MR_small_bigendian.dcm", "JPEG-LL.dcm"],
        "mr": ["MR_small.dcm", "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "emri_small.dcm"],
    }
    for split, copies in (("pretrain", 4), ("train", 2), ("test", 1)):
        for label, names in good.items():
            for name in names:
                for i in range(copies):
                    target = tmp_path / split / label / f"{i}-{name}"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(_file(name), target)
    shutil.copy(_file("rtplan.dcm"), tmp_path / "pretrain" / "ct" / "plan.dcm")  # 1 bad of 29 files: under 5%
    run = tmp_path / "run"
    capsys.readouterr()
    assert tiny_pretrain(tmp_path / "pretrain", run, 2) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "DICOM without pixel data" in [r for p, r in read_skipped(run / SKIPPED).items() if p.endswith("plan.dcm")]
    assert "skipped 1 unusable files of 29 files (1 x DICOM without pixel data)" in said
    assert "64 images -> " in said  # 24 single-frame files and 4 of 10 frames
    assert "DICOM files of 4 modalities: 16 MR, 4 CT, 4 NM, 4 OT" in said
    assert "DICOM, a window per modality: CT [" in said and ", NM [" in said
    recorded = json.loads((run / "backbone.json").read_text())["data"]["intensity"]
    assert sorted(recorded["by_modality"]) == ["CT", "MR", "NM"]
    evaluate = ["eval", str(run), "--train", str(tmp_path / "train"), "--test", str(tmp_path / "test")]
    # the few real files are in both splits (a test of decoding, not of a score): allowed, and said
    assert main([*evaluate, "--workers", "0", "--allow-overlap"]) == 0
    result = json.loads((run / "eval.json").read_text())["knn"]
    assert result["settings"]["overlaps"][0].startswith("train and test share 7 files by content")
    assert result["settings"]["classes"] == ["ct", "mr"] and result["settings"]["test_images"] == 16
    assert result["settings"]["intensity"] == recorded  # the model's own windows, each modality's
    capsys.readouterr()
