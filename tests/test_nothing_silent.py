"""Nothing silent: what a real folder, a real file system and a user's typing do to a run is said, or refused with
one line, never absorbed. NaN pixels, files that change after screening, headers that claim billions of values,
names no line-based list survives, entries that are not files, flat data, a starting point that gives NaN."""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import timm
from PIL import Image
from safetensors.torch import save_file

from hpt.core.run_files import SKIPPED
from hpt.data.dataset import sample_indices
from hpt.data.decode import Decoding, load_rgb
from hpt.data.files import find_images
from hpt.data.fingerprint import DataFingerprint
from hpt.data.intensity import Window
from hpt.data.order import StepBatches
from hpt.data.screen import ALL_NON_FINITE, ScreenPolicy, problem_with, read_skipped
from hpt.data.stats import pixel_stats
from hpt.data.window_choice import resolve_window
from hpt.errors import HptError

TOLERANT = ScreenPolicy(max_bad_fraction=0.5)
"""Screening that lists a few bad files among a few good ones instead of refusing the folder."""


def _float_tiles(digits: dict[str, Path], folder: Path, count: int = 60) -> list[Path]:
    """`count` real MNIST digits as float32 TIFFs in [0, 1000] (a float microscopy- or elevation-like tile)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, png in enumerate(sorted(digits["pretrain"].glob("*.png"))[:count]):
        values = np.asarray(Image.open(png).convert("L"), dtype=np.float32) * (1000.0 / 255.0)
        path = folder / f"tile{i:03d}.tif"
        tifffile.imwrite(path, values)
        written.append(path)
    return written


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_one_nan_or_inf_pixel_leaves_the_window_finite_and_the_images_visible(digits, tmp_path, bad_value):
    tiles = _float_tiles(digits, tmp_path / "tiles")
    clean = resolve_window(find_images(tmp_path / "tiles"), "auto")
    values = tifffile.imread(tiles[7])
    values[3, 4] = bad_value
    tifffile.imwrite(tiles[7], values)

    window = resolve_window(find_images(tmp_path / "tiles"), "auto")
    # the one bad value is left out of 60 x 784 others: the percentiles are those of the clean tiles
    assert (window.low, window.high) == (clean.low, clean.high) and np.isfinite([window.low, window.high]).all()
    assert "1 no-data/NaN/inf values in 1 files left out" in window.source and tiles[7].name in window.source
    rgb = np.asarray(load_rgb(tiles[7], window))
    assert rgb[3, 4].tolist() == [0, 0, 0]  # filled with the window's low end
    assert rgb.max() == 255 and rgb.mean() > 10  # the digit itself is still there, not a black image

    filled = np.asarray(load_rgb(tiles[7], Window("fixed", window.low, window.high, fill=window.high)))
    assert filled[3, 4].tolist() == [255, 255, 255]  # data.nan_fill, in the images' own values


def test_nan_in_a_multiband_array_and_files_of_nothing_but_nan(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(tmp_path / f"b{i}.npy", rng.uniform(0, 100, size=(12, 12, 5)).astype(np.float32))
    with_nan = np.load(tmp_path / "b0.npy")
    with_nan[0, 0, :] = np.nan
    np.save(tmp_path / "b0.npy", with_nan)
    np.save(tmp_path / "all-nan.npy", np.full((12, 12, 5), np.nan, dtype=np.float32))
    tifffile.imwrite(tmp_path / "all-inf.tif", np.full((12, 12), np.inf, dtype=np.float32))

    images = find_images(tmp_path, policy=TOLERANT)
    assert {p.name: r for p, r in images.skipped.items()} == {
        "all-nan.npy": ALL_NON_FINITE,
        "all-inf.tif": ALL_NON_FINITE,
    }
    window = resolve_window(images, "auto")
    assert 0 < window.low < window.high < 100 and "5 no-data/NaN/inf values in 1 files" in window.source
    bands = Decoding(window, 5)(tmp_path / "b0.npy")
    assert bands[:, 0, 0].tolist() == [0] * 5 and int(bands.max()) == 255


def test_a_sample_of_nothing_but_nan_is_an_error_naming_a_file(tmp_path):
    for i in range(3):
        tifffile.imwrite(tmp_path / f"t{i}.tif", np.full((8, 8), np.nan, dtype=np.float32))
    with pytest.raises(HptError, match=f"3 of 3 files cannot be used.*{ALL_NON_FINITE}"):
        find_images(tmp_path)  # screening refuses them all; the window, measured anyway, refuses too:
    from hpt.data.window_choice import measure_window

    with pytest.raises(HptError, match=r"every value of the 3 sampled high-bit images is NaN or infinite \(e.g. '.*t0"):
        measure_window([(path, None) for path in sorted(tmp_path.glob("*.tif"))])


def _claim_size(tiff: Path, width: int, height: int) -> None:
    """Rewrite a TIFF's ImageWidth and ImageLength tags in place: the header claims what the data is not."""
    with tifffile.TiffFile(tiff) as f:
        tags = f.pages.first.tags
        places = [(tags[name].valueoffset, tags[name].dtype) for name in ("ImageWidth", "ImageLength")]
    with open(tiff, "r+b") as f:
        for (offset, dtype), value in zip(places, (width, height)):
            f.seek(offset)
            f.write(struct.pack("<H" if dtype == 3 else "<I", value))  # 3: SHORT, else LONG


def test_multiband_bombs_are_refused_from_their_headers_before_any_decoding(tmp_path):
    tiff = tmp_path / "bomb.tif"
    tifffile.imwrite(tiff, np.zeros((16, 16, 5), dtype=np.uint8), photometric="minisblack", planarconfig="contig")
    _claim_size(tiff, 60_000, 60_000)  # 18 GB of values claimed in a file of a few kB
    npy = tmp_path / "bomb.npy"
    with open(npy, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (60_000, 60_000, 5)})
        f.write(b"\0" * 64)
    # had either been decoded, it would be refused as truncated (and would first ask for 18-72 GB of memory)
    for path in (tiff, npy):
        assert problem_with(path) == "over the limit of 89478485 pixels, data.max_image_pixels (60000 x 60000 pixels)"
    assert problem_with(tiff, max_image_pixels=10**10).startswith("truncated or corrupt")  # the claim is a lie
    pages = tmp_path / "pages.npy"  # each page within the pixel limit, 9000 of them: 1.5 TB of values
    with open(pages, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<u2", "fortran_order": False, "shape": (9000,) * 3})
        f.write(b"\0" * 64)
    assert problem_with(pages) == "729000000000 values (9000 x 9000 x 9000), over data.max_image_pixels x 64 bands"


def test_skipped_jsonl_survives_any_name_and_lists_entries_that_are_not_files(digits, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for png in sorted(digits["pretrain"].glob("*.png"))[:30]:
        (data / png.name).write_bytes(png.read_bytes())
    odd = data / "tab\there\nnewline.png"
    odd.write_bytes(b"")
    os.mkfifo(data / "pipe.png")  # opened, it would block the run for ever
    (data / "gone.png").symlink_to(tmp_path / "nowhere.png")

    images = find_images(data, policy=TOLERANT)
    reasons = {p.name: r for p, r in images.skipped.items()}
    assert reasons == {
        odd.name: "empty file",
        "pipe.png": "not a regular file (a FIFO)",
        "gone.png": "dangling symbolic link",
    }
    from hpt.data.screen import skipped_report

    (tmp_path / SKIPPED).write_text(skipped_report(images.skipped))
    assert read_skipped(tmp_path / SKIPPED) == {str(p): r for p, r in images.skipped.items()}


def _corrupt_in_place(path: Path) -> None:
    """Random bytes of the same size, with the same modification time: what a sync tool can leave."""
    st = path.stat()
    path.write_bytes(random.Random(0).randbytes(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_file_changed_after_screening_is_left_out_of_the_statistics(digits, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for png in sorted(digits["pretrain"].glob("*.png"))[:20]:
        (data / png.name).write_bytes(png.read_bytes())
    images = find_images(data)  # screened (and remembered by path, size and time)
    _corrupt_in_place(images.paths[3])
    assert not find_images(data).skipped  # the screening cache cannot see it
    stats = pixel_stats(images, 16, sample=100)
    assert list(stats.unreadable) == [images.paths[3]]
    assert stats.unreadable[images.paths[3]].startswith("unreadable after screening (UnidentifiedImageError")


SMALL_SAMPLES = ("--set=data.stats_sample=8", "--set=transfer.target_sample=8")


def test_a_file_changed_during_training_is_skipped_listed_and_stood_in_for(digits, tmp_path, tiny_pretrain, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for png in sorted(digits["pretrain"].glob("*.png"))[:64]:
        (data / png.name).write_bytes(png.read_bytes())
    paths = find_images(data).paths
    # neither in the statistics' sample (data.stats_sample=8) nor in the BN estimate's (transfer.target_sample=8)
    sampled = {*random.Random(0).sample(paths, 8), *(paths[i] for i in sample_indices(len(paths), 8, 0))}
    first_batch = [paths[i] for i in StepBatches(len(paths), 8, 0).epoch_order(0)[:8].tolist()]
    victim = next(p for p in first_batch if p not in sampled)  # decoded first by training itself
    _corrupt_in_place(victim)

    run = tmp_path / "run"
    assert tiny_pretrain(data, run, 2, *SMALL_SAMPLES) == 0
    said = "".join(capsys.readouterr().err.split())  # the console wraps long paths mid-word
    assert f"skipped{victim}:unreadableduringtraining" in said
    listed = read_skipped(run / SKIPPED)
    assert list(listed) == [str(victim)] and listed[str(victim)].startswith("unreadable during training")

    # over data.max_bad_fraction: one line, exit 2, the folder's checkpoint and list intact
    again = tmp_path / "strict"
    code = tiny_pretrain(data, again, 2, *SMALL_SAMPLES, "--set=data.max_bad_fraction=0.01")
    err = capsys.readouterr().err
    assert code == 2 and "1 of 64 files cannot be used (1 of them found unreadable during training" in err
    assert len([line for line in err.splitlines() if line.startswith("hpt: error")]) == 1
    assert str(victim) in read_skipped(again / SKIPPED)


def test_flat_data_is_refused_with_what_is_wrong(tmp_path, tiny_pretrain, capsys):
    for i in range(16):
        Image.new("L", (20, 20), 128).save(tmp_path / f"grey{i}.png")
    assert tiny_pretrain(tmp_path, tmp_path / "run", 2) == 2
    err = capsys.readouterr().err
    assert "every sampled image has one value in every pixel" in err and "nothing to learn" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a real run through the command line
@pytest.mark.parametrize(
    "damage,said",
    [
        ("nan", "the starting point's weights are not finite (NaN or inf) before any training"),
        # finite weights whose features overflow float32 (1e30 x 1e30 > 3.4e38): inf - inf = NaN downstream
        ("huge", "the monitor's rankme is nan at step 0, before any training"),
    ],
)
def test_a_starting_point_that_gives_nan_features_stops_at_step_0(digits, tmp_path, capsys, damage, said):
    from hpt.cli import main

    state = timm.create_model("test_resnet", num_classes=0).state_dict()
    convs = [k for k in state if k.endswith("conv1.weight") or k.endswith("conv2.weight")][:2]
    for name in convs if damage == "huge" else convs[:1]:
        state[name] = state[name] * 1e30 if damage == "huge" else state[name].clone().fill_(float("nan"))
    base = tmp_path / "base.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(base))
    code = main(
        [
            "pretrain", "--data", str(digits["pretrain"]), "--out", str(tmp_path / "run"), "--base", str(base),
            "--backbone", "timm:test_resnet", "--steps", "2", "--batch-size", "8", "--image-size", "16",
            "--workers", "0", "--set=mocov2.queue_size=32", "--set=monitor.label_free_sample=32",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and said in " ".join(err.split()), err
    assert not (tmp_path / "run" / "backbone.safetensors").exists()


def _tiny_run(digits, root: Path, name: str = "run") -> dict[str, Any]:
    """A finished tiny run on its own copy of 64 digits; returns its data, folder and the flags that made it."""
    from hpt.cli import main

    data = root / "data"
    data.mkdir(parents=True)
    for png in sorted(digits["pretrain"].glob("*.png"))[:64]:
        (data / png.name).write_bytes(png.read_bytes())
    run = root / name
    flags = [
        "--data", str(data), "--out", str(run), "--steps", "2", "--set=monitor.label_free_sample=0",
        "--set=data.image_size=16", "--set=data.num_workers=0", "--set=model.backbone=timm:test_resnet",
        "--set=train.batch_size=8", "--set=mocov2.queue_size=32",
    ]  # fmt: skip
    assert main(["pretrain", *flags]) == 0
    return {"data": data, "run": run, "flags": flags}


@pytest.fixture(scope="module")
def finished(digits, tmp_path_factory):
    """A finished tiny run that the tests read and do not change, in a folder rich would read as markup."""
    return _tiny_run(digits, tmp_path_factory.mktemp("finished"), "run[red]x")


def _one_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("hpt: error")]
    assert len(errors) == 1 and len(err.strip().splitlines()) == 1, err
    return errors[0]


def test_paths_are_printed_as_they_are(finished, capsys):
    from hpt.cli import main

    capsys.readouterr()
    assert main(["inspect", str(finished["run"])]) == 0
    assert "run[red]x" in capsys.readouterr().out
    assert main(["pretrain", *finished["flags"], "--resume"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"'{finished['run']}' is finished (2 steps" in err and "nothing to resume" in err


def test_resume_of_a_finished_run_says_so_and_touches_nothing(finished, capsys):
    from hpt.cli import main

    run, flags = finished["run"], finished["flags"]
    capsys.readouterr()
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    assert main(["pretrain", *flags, "--resume"]) == 0
    assert "nothing to resume" in " ".join(capsys.readouterr().err.split())
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.slow  # a real run of its own
def test_changed_data_is_refused_on_resume_unless_allowed_and_then_recorded(digits, tmp_path, capsys):
    from hpt.cli import main

    made = _tiny_run(digits, tmp_path)
    run, flags = made["run"], made["flags"]
    capsys.readouterr()
    (run / "backbone.safetensors").unlink()  # as if cut off after its last checkpoint
    data = tmp_path / "data"
    files = sorted(data.glob("*.png"))
    for path in files[:3]:
        path.unlink()
    spare = sorted(digits["pretrain"].glob("*.png"))[64:70]
    for png in spare[:5]:
        (data / f"new-{png.name}").write_bytes(png.read_bytes())
    files[10].write_bytes(spare[5].read_bytes())  # replaced by another digit

    assert main(["pretrain", *flags, "--resume"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "the data changed since" in line and "5 added, 3 removed, 1 changed" in line
    assert "--allow-data-change" in line and not (run / "backbone.safetensors").exists()

    assert main(["pretrain", *flags, "--resume", "--allow-data-change"]) == 0
    assert "data changed" in capsys.readouterr().err
    provenance = json.loads((run / "backbone.json").read_text())
    assert provenance["data"]["changed_on_resume"] == [{"at_step": 2, "added": 5, "removed": 3, "changed": 1}]
    assert provenance["data"]["fingerprint"] == DataFingerprint.read(run / "data.json").digest()


@pytest.mark.slow  # a real run of its own
def test_a_resume_in_another_environment_says_so_and_records_the_new_one(digits, tmp_path, capsys, monkeypatch):
    """Another package version rounds elsewhere: the run goes on, but the console says it is no longer bit for bit
    and the files record the environment they were written in. (Another timm is simulated by its version: one
    install of each is all a test machine has.)"""
    from hpt.cli import main
    from hpt.core import environment

    made = _tiny_run(digits, tmp_path)
    run, flags = made["run"], made["flags"]
    first = json.loads((run / "backbone.json").read_text())["environment"]
    assert first == environment.current("cpu").to_dict()
    assert "computed with" in (run / "README.md").read_text()  # the model card
    capsys.readouterr()
    (run / "backbone.safetensors").unlink()  # as if cut off after its last checkpoint
    installed = environment._version
    monkeypatch.setattr(environment, "_version", lambda name: "9.9-other" if name == "timm" else installed(name))
    assert main(["pretrain", *flags, "--resume"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "another environment than the one step 2 was written in" in err, err
    assert f"timm {first['packages']['timm']} -> 9.9-other" in err and "not bit for bit" in err
    assert json.loads((run / "backbone.json").read_text())["environment"]["packages"]["timm"] == "9.9-other"
    assert main(["inspect", str(run)]) == 0
    assert "timm 9.9-other" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow  # a real run of its own
def test_a_tampered_checkpoint_or_backbone_is_said_to_be_modified(finished, digits, tmp_path, capsys):
    from hpt.cli import main

    made = _tiny_run(digits, tmp_path)
    run, flags = made["run"], made["flags"]
    capsys.readouterr()
    assert main(["inspect", str(run)]) == 0 and "modified" not in capsys.readouterr().out
    (run / "backbone.safetensors").unlink()  # now resumable: it continues from checkpoint.safetensors
    (run / "model.safetensors").unlink()
    for name in ("checkpoint.safetensors", "best.safetensors"):
        if (run / name).is_file():
            _flip_last_byte(run / name)
    assert main(["pretrain", *flags, "--resume"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "checkpoint.safetensors' was modified since hpt wrote it" in line and "--allow-modified" in line

    exported = tmp_path / "exported.safetensors"
    exported.write_bytes((finished["run"] / "backbone.safetensors").read_bytes())
    _flip_last_byte(exported)
    assert main(["inspect", str(exported)]) == 0
    assert capsys.readouterr().out.startswith(f"WARNING: '{exported}' was modified since it was written")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last tensor's last byte: a file that still parses
    path.write_bytes(bytes(data))


@pytest.mark.slow  # a real run of its own
def test_export_leaves_no_temporary_file_and_bad_out_is_one_line(digits, tmp_path, capsys):
    from hpt.cli import main

    run = _tiny_run(digits, tmp_path)["run"]
    capsys.readouterr()
    for _ in range(2):
        assert main(["export", str(run)]) == 0
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    assert os.path.samefile(run / "model.safetensors", run / "backbone.safetensors")
    capsys.readouterr()
    for out, said in [
        (tmp_path, "is a folder"),  # named before minutes of exporting
        (tmp_path / "missing" / "b.pt", "does not exist"),
        (Path("/proc/b.pt"), "could not write '/proc/b.pt'"),
    ]:
        assert main(["export", str(run), "--format", "torchscript", "--out", str(out)]) == 2
        assert said in _one_error_line(capsys.readouterr().err)
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]


def test_config_mistakes_are_one_line_and_leave_nothing(digits, tmp_path, tiny_pretrain, capsys, monkeypatch):
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  batch_size: 8\noptim:\n  lr: 0.1\ntrain:\n  steps: 5\n")
    out = tmp_path / "run"
    cases = [
        (("--config", str(config)), "gives the key 'train' twice (again at line 5)"),
        (("--set=optim.lr=1e309",), "'optim.lr' got '1e309'; input should be a finite number"),
        (("--set=data.nan_fill=.nan",), "'data.nan_fill' got nan; input should be a finite number"),
        (("--intensity", "0,inf"), "a window [low, high] needs two finite numbers"),
    ]
    for flags, said in cases:
        assert tiny_pretrain(digits["pretrain"], out, 2, *flags) == 2
        assert said in _one_error_line(capsys.readouterr().err)
        assert not out.exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://nowhere")
    assert tiny_pretrain(digits["pretrain"], out, 2, "--logger", "mlflow") == 2
    assert "mlflow cannot use MLFLOW_TRACKING_URI 'foo://nowhere'" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_eval_refuses_a_training_split_of_one_class(finished, digits, tmp_path, capsys):
    from hpt.cli import main

    one = tmp_path / "one" / "seven"
    one.mkdir(parents=True)
    for png in sorted(digits["pretrain"].glob("*.png"))[:10]:
        (one / png.name).write_bytes(png.read_bytes())
    assert main(["eval", str(finished["run"]), "--train", str(one.parent), "--test", str(digits["test"])]) == 2
    assert "every image is of one class ('seven')" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", ["report", "select", "embed", "eval", "export"])
def test_every_subcommand_with_an_output_it_cannot_write_says_so_in_one_line(finished, digits, command, capsys):
    from hpt.cli import main

    run, train, test = str(finished["run"]), str(digits["train"]), str(digits["test"])
    nowhere = "/proc/hpt-cannot-be-here"  # /proc takes no new files or folders, whoever runs the test
    argv = {
        "report": ["report", run, "--out", nowhere],
        "select": ["select", "--candidates", run, "--data", train, "--image-size", "16", "--out", f"{nowhere}.json"],
        "embed": ["embed", run, "--data", test, "--out", nowhere],
        "eval": ["eval", run, "--train", train, "--test", test, "--out", f"{nowhere}/eval.json"],
        "export": ["export", run, "--format", "torchscript", "--out", f"{nowhere}.pt"],
    }[command]
    capsys.readouterr()
    assert main(argv) == 2
    assert nowhere in _one_error_line(capsys.readouterr().err)
