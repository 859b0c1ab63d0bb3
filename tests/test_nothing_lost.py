"""Nothing a user wrote is deleted, nothing a user asked for is ignored (issue 51): `--overwrite` only in a folder
an hpt run owns, `--resume` of nothing said, settings that would not take effect refused, a killed writer's
leftovers removed by the next command writing there."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_RUN, as_flags
from PIL import Image
from skimage import data as skimage_data

from hpt.checkpoints.files import modified_since_written, read_provenance, read_tensors, save_tensors
from hpt.config import load_config
from hpt.core.atomic import STALE_AFTER_S, temporary_path, write_text_atomic
from hpt.core.run_files import read_metrics
from hpt.data import builtin
from hpt.data.decode import RGB, load_rgb
from hpt.data.files import find_images
from hpt.data.view_grid import MIN_TILE, view_grid
from hpt.data.views import eval_view
from hpt.errors import HptError
from hpt.version import __version__

USERS_FILES = {
    "csv/results.csv": b"epoch,acc\n1,0.5\n",
    "tensorboard/events.out": b"\x00\x01events",
    "wandb/run.txt": b"wandb",
    "README.md": b"# My project\n",
    "config.json": b'{"mine": true}\n',
    "eval.json": b'{"my": "scores"}\n',
    "mlflow.db": b"SQLite format 3\x00",
    "notes.txt": b"not a name hpt uses\n",
    "pilots/a.txt": b"a",
}
"""A user's project folder whose names hpt also uses (its loggers', its model card's, `--auto`'s)."""


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _users_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "userproj"
    for name, content in USERS_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize("auto", [False, True])
def test_overwrite_refuses_a_folder_that_is_not_an_hpt_run(auto, digits, tmp_path, hpt_here):
    folder = _users_folder(tmp_path)
    before = _snapshot(folder)
    extra = ["--auto", "--monitor-train", digits["train"], "--monitor-test", digits["test"]] if auto else []
    result = hpt_here(
        "pretrain", "--data", digits["pretrain"], "--out", folder, "--overwrite", "--steps", "2", "--base",
        "timm:test_resnet", *extra,
    )  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "is not an hpt run" in result.stderr
    for name in ("README.md", "config.json", "csv", "eval.json", "mlflow.db", "pilots", "tensorboard", "wandb"):
        assert name in result.stderr  # each thing it would have removed, named
    assert "notes.txt" not in result.stderr
    assert _snapshot(folder) == before  # byte for byte


def test_overwrite_of_a_run_replaces_its_own_files_and_keeps_the_users(digits, tmp_path, tiny_pretrain):
    run = tmp_path / "run"
    assert tiny_pretrain(digits["pretrain"], run, 2) == 0
    (run / "notes.txt").write_text("mine\n")
    (run / "my-plots").mkdir()
    (run / "my-plots" / "a.png").write_bytes(b"\x89PNG")
    first = (run / "backbone.safetensors").read_bytes()
    assert tiny_pretrain(digits["pretrain"], run, 2, "--overwrite", "--set=train.seed=1") == 0
    assert (run / "notes.txt").read_text() == "mine\n" and (run / "my-plots" / "a.png").read_bytes() == b"\x89PNG"
    assert (run / "backbone.safetensors").read_bytes() != first  # replaced: another seed's run
    assert [r["step"] for r in read_metrics(run) if "loss" in r][-1] == 2


def test_resume_of_nothing_is_one_line(digits, tmp_path, hpt_here):
    missing = tmp_path / "never-started"
    result = hpt_here("pretrain", "--data", digits["pretrain"], "--out", missing, "--resume", "--steps", "2")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "there is no run to continue; start it without --resume" in result.stderr
    assert not missing.exists()


def test_resume_before_the_first_checkpoint_says_it_starts_again(digits, tmp_path, tiny_pretrain, capsys):
    """A run killed before its first checkpoint (config.yaml and data.json written, nothing else): --resume
    starts it from step 0 and says so."""
    run = tmp_path / "run"
    assert tiny_pretrain(digits["pretrain"], run, 2) == 0
    for path in run.iterdir():
        if path.name not in ("config.yaml", "data.json"):
            path.unlink() if path.is_file() else None
    capsys.readouterr()
    assert tiny_pretrain(digits["pretrain"], run, 2, "--resume") == 0
    said = " ".join(capsys.readouterr().err.split())  # the console wraps its lines at spaces
    assert "holds no checkpoint (it stopped before its first): started again from step 0" in said
    assert (run / "backbone.safetensors").is_file()


def test_resume_with_no_steps_left_finishes_without_nan(digits, tmp_path, tiny_pretrain, capsys):
    """Stopped after the last step's checkpoint, before the export (the backbone removed as a kill would have
    left it): the resume trains nothing, exports, and reports the last step's loss, not nan."""
    run = tmp_path / "run"
    assert tiny_pretrain(digits["pretrain"], run, 2, "--set=train.checkpoint_every=2") == 0
    last_loss = [r["loss"] for r in read_metrics(run) if "loss" in r][-1]
    for name in ("backbone.safetensors", "model.safetensors"):
        (run / name).unlink()
    capsys.readouterr()
    assert tiny_pretrain(digits["pretrain"], run, 2, "--resume", "--set=train.checkpoint_every=2") == 0
    err = " ".join(capsys.readouterr().err.split())  # the console wraps its lines at spaces
    assert "all 2 steps were trained before the stop" in err and "nan" not in err
    assert f"final loss {last_loss:.4f}" in err
    assert (run / "backbone.safetensors").is_file()


def test_a_modified_best_backbone_is_refused_on_resume(digits, tmp_path, tiny_pretrain, hpt_here):
    """best.safetensors is what a resumed run's finish exports: changed on disk since it was written, --resume
    refuses in one line (it was exported without a look), and with --allow-modified goes on, recorded."""
    run = tmp_path / "run"
    monitor = ["--monitor-train", str(digits["train"]), "--monitor-test", str(digits["test"]), "--monitor-every", "1"]
    assert tiny_pretrain(digits["pretrain"], run, 2, "--set=train.checkpoint_every=2", *monitor) == 0
    header, data = _header(run / "best.safetensors")
    edited = bytearray(data)
    edited[-1] ^= 0x01  # one bit of one weight
    _rewrite(run / "best.safetensors", header, bytes(edited))
    (run / "backbone.safetensors").unlink()  # stopped before its export
    flags = ["--data", digits["pretrain"], "--out", run, "--steps", "2", "--resume", *as_flags(TINY_RUN, "mocov2"),
             *monitor, "--set=train.checkpoint_every=2", "--set=monitor.label_free_sample=0"]  # fmt: skip
    refused = hpt_here("pretrain", *flags)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "--resume: best backbone so far" in refused.stderr and "--allow-modified" in refused.stderr
    assert not (run / "backbone.safetensors").exists()
    assert hpt_here("pretrain", *flags, "--allow-modified").returncode == 0
    resolved = read_provenance(run / "backbone.safetensors")["resolved"]
    assert resolved["modified_inputs"] == [f"--resume: best backbone so far '{run.resolve() / 'best.safetensors'}'"]


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("train.steps", True, "expected a number, not true or false"),  # `--set train.steps=yes`: was 1 step
        ("monitor.every", False, "expected a number, not true or false"),  # `off`: was 0
        ("train.seed", False, "expected a number, not true or false"),
        ("data.bands", [True, 3], "expected a list of numbers, not true or false"),  # `[yes, 3]`: was band 1
        ("train.loggers", [False], "expected a list of names, not true or false"),
        ("train.precision", True, "expected a name, not true or false"),
        ("train.compile", 1, "expected true or false"),
        ("train.compile", "off", "expected true or false"),
        ("transfer.freeze_bn_statistics", 0, "expected true or false"),
        ("train.stop_signals", ["SIGKILL"], "no process can catch SIGKILL"),
        ("train.stop_signals", ["halt"], "'halt' is not a signal"),
        ("distill.teacher", "/nonexistent.pth", "distill.teacher is set ('/nonexistent.pth') but the method is mocov2"),
        ("dino.out_dim", 100, "dino.out_dim is set (100) but the method is mocov2"),
    ],
)
def test_a_setting_that_would_not_take_effect_is_refused(key, value, said):
    with pytest.raises(HptError, match="^") as refused:
        load_config(None, {key: value})
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_what_takes_effect_still_passes():
    """The other side of the refusals above: numbers written as YAML reads them, None for a switch's 'decide for
    me', another method's section at its defaults (a config.yaml hpt wrote holds every method's), the chosen
    method's own settings."""
    config = load_config(None, {"optim.lr": "1e-3", "train.steps": 5, "transfer.freeze_bn_statistics": None})
    assert config.optim.lr == 0.001 and config.train.steps == 5
    assert load_config(None, {"dino.out_dim": 65536, "train.stop_signals": ["usr1"]}).method == "mocov2"
    assert load_config(None, {"method": "dino", "dino.out_dim": 100}).dino.out_dim == 100


def test_a_teacher_without_distillation_is_refused_before_anything_runs(digits, tmp_path, hpt_here):
    """What a user typed: `--teacher` with the default method trained and exported MoCo v2, exit 0."""
    out = tmp_path / "run"
    result = hpt_here("pretrain", "--data", digits["pretrain"], "--out", out, "--teacher", "/nonexistent.pth")
    assert result.returncode == 2 and "choose --method distill" in result.stderr and not out.exists()
    killed = hpt_here("pretrain", "--print-config", "--set", "train.stop_signals=[SIGKILL]")
    assert killed.returncode == 2 and "no process can catch SIGKILL" in killed.stderr


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_killed_writers_leftover_is_removed_by_the_next_write_there(tmp_path):
    """`NAME.PID.tmp` of a process that no longer runs, unchanged for longer than STALE_AFTER_S, goes when NAME is
    next written; a live process's, a fresh one (maybe another machine's, on a shared disk) and a user's own
    `.tmp` file stay."""
    target = tmp_path / "backbone.onnx"
    old = time.time() - STALE_AFTER_S - 5
    pids = {_dead_pid() for _ in range(3)}  # two processes that ran and ended (a PID is seldom reused at once)
    dead, fresh_dead = (tmp_path / f"backbone.onnx.{pid}.tmp" for pid in sorted(pids)[:2])
    live, users = tmp_path / f"backbone.onnx.{os.getppid()}.tmp", tmp_path / "backbone.onnx.mine.tmp"
    for path in (dead, fresh_dead, live, users):
        path.write_bytes(b"x" * 1000)
    for path in (dead, live, users):
        os.utime(path, (old, old))
    write_text_atomic(target, "exported")
    assert not dead.exists() and fresh_dead.exists() and live.exists() and users.exists()
    assert target.read_text() == "exported" and not temporary_path(target).exists()


@pytest.mark.parametrize(
    ("content", "said"),
    [("42", "holds JSON that is not an object of evaluations (a int)"), ("[1, 2]", "(a list)"), ("{oops", "not JSON")],
)
def test_eval_refuses_an_out_it_cannot_write_before_any_work(content, said, digits, tmp_path, hpt_here):
    """The --out is checked first: the model named here does not exist, and the error is still the --out's (the
    evaluation, seconds to minutes, is not run to be thrown away)."""
    out = tmp_path / "o.json"
    out.write_text(content)
    result = hpt_here("eval", "timm:no_such_model", "--train", digits["train"], "--test", digits["test"], "--out", out)
    assert result.returncode == 2 and said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == content
    folder = hpt_here("eval", "timm:no_such_model", "--train", digits["train"], "--test", digits["test"], "--out",
                      tmp_path)  # fmt: skip
    assert folder.returncode == 2 and "is a folder; name the JSON file to write" in folder.stderr


def test_embed_and_report_refuse_a_file_as_their_folder_before_any_work(digits, tmp_path, hpt_here):
    taken = tmp_path / "taken"
    taken.write_text("mine\n")
    embedded = hpt_here("embed", "timm:no_such_model", "--data", digits["pretrain"], "--out", taken)
    reported = hpt_here("report", tmp_path / "no-such-run", "--out", taken)
    for result in (embedded, reported):
        assert result.returncode == 2 and "is a file; name a folder to write into" in result.stderr, result.stderr
    assert taken.read_text() == "mine\n"


MERGE = """
import sys, time
from pathlib import Path
from hpt.eval.runner import _merge_into
out, who = Path(sys.argv[1]), sys.argv[2]
(out.parent / f"ready-{who}").touch()
while len(list(out.parent.glob("ready-*"))) < 2:  # both imported: the writes overlap
    time.sleep(0.001)
for i in range(100):
    _merge_into(out, f"{who}-{i}", {"metrics": {"i": i}})
"""


def test_evaluations_written_at_once_into_one_file_all_stay(tmp_path):
    """Two processes adding entries to one eval.json at the same time (each reads, adds, writes back): under the
    folder's lock none is lost. Without it (`folder_lock` made a no-op), measured on this machine: 97 and 81 of
    the 200 entries lost in two tries."""
    out = tmp_path / "eval.json"
    writers = [
        subprocess.Popen([sys.executable, "-c", MERGE, str(out), who], stderr=subprocess.PIPE, text=True)
        for who in ("a", "b")
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""
    assert sorted(json.loads(out.read_text())) == sorted(f"{who}-{i}" for who in "ab" for i in range(100))


def _astronaut(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """scikit-image's real photo, small and not symmetric: a turn or a mirror changes it."""
    return Image.fromarray(skimage_data.astronaut()).resize(size)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_photo_is_read_upright_as_its_camera_recorded(suffix, tmp_path):
    """A phone stores a photo taken upright sideways, with EXIF orientation 6 (display turned 90 degrees
    clockwise): read as it is seen, not as it is stored. The stored pixels are made here by turning the upright
    photo 90 degrees counter-clockwise (what orientation 6 undoes), not by the function under test. PNG is
    lossless (exact); JPEG at quality 95 is off by a few levels on average (4.1 measured), a sideways read by ~50."""
    upright = _astronaut()
    orientation = Image.Exif()
    orientation[0x0112] = 6
    path = tmp_path / f"phone{suffix}"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=orientation.tobytes(), quality=95)
    read = load_rgb(path)
    assert read.size == upright.size  # 64 x 48, not 48 x 64
    error = np.abs(np.asarray(read, dtype=float) - np.asarray(upright, dtype=float)).mean()
    assert error == 0 if suffix == ".png" else error < 10


def test_gifs_are_read_and_an_empty_array_is_named_as_such(tmp_path):
    """A GIF is an image (its first frame; it was neither read nor listed as skipped); a (0, 0) array is skipped
    as empty, not as 'every value is NaN'."""
    folder = tmp_path / "data"
    folder.mkdir()
    photo = _astronaut()
    for i in range(20):
        photo.rotate(i * 10).save(folder / f"{i:02d}.png")
    frames = [photo.convert("P"), photo.rotate(90).convert("P")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    np.save(folder / "empty.npy", np.zeros((0, 0), dtype=np.float32))
    found = find_images(str(folder))
    names = {Path(name).name for name in found.paths.names()}
    assert "animated.gif" in names and "empty.npy" not in names
    first = np.asarray(load_rgb(folder / "animated.gif"), dtype=float)
    assert np.abs(first - np.asarray(frames[0].convert("RGB"), dtype=float)).max() == 0  # the first frame
    skipped = {Path(path).name: reason for path, reason in found.skipped.items()}
    assert skipped.get("empty.npy", "").startswith("an empty array (shape (0, 0))"), skipped


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def _rewrite(path: Path, header: dict, data: bytes) -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)


@pytest.fixture
def signed(tmp_path) -> Path:
    """An hpt file of two tensors of one size (their offsets can be swapped), as hpt writes it."""
    path = tmp_path / "backbone.safetensors"
    tensors = {"a.weight": torch.arange(8, dtype=torch.float32), "b.weight": -torch.arange(8, dtype=torch.float32)}
    save_tensors(path, tensors, {"hpt_version": __version__, "format": "hpt-backbone/1"})
    assert modified_since_written(path) is False
    return path


def test_swapped_offsets_are_a_modification(signed):
    """The header's tensor table is hashed: the weights of two layers swapped (hpt 0.7's hash did not see it)."""
    header, data = _header(signed)
    header["a.weight"]["data_offsets"], header["b.weight"]["data_offsets"] = (
        header["b.weight"]["data_offsets"], header["a.weight"]["data_offsets"],
    )  # fmt: skip
    _rewrite(signed, header, data)
    assert torch.equal(read_tensors(signed)[0]["a.weight"], -torch.arange(8.0))  # the file reads, swapped
    assert modified_since_written(signed) is True


def test_a_relabelled_dtype_is_a_modification(signed):
    header, data = _header(signed)
    header["a.weight"]["dtype"] = "I32"
    _rewrite(signed, header, data)
    assert modified_since_written(signed) is True


def test_a_deleted_hash_is_a_modification_not_an_old_file(signed):
    """Without its hash, a file whose provenance says a hashing hpt wrote it is modified, not 'before 0.6'."""
    header, data = _header(signed)
    del header["__metadata__"]["hpt_file_sha256"]
    _rewrite(signed, header, data)
    assert modified_since_written(signed) is True
    header["__metadata__"]["hpt"] = json.dumps({"hpt_version": "0.5.2"})
    _rewrite(signed, header, data)
    assert modified_since_written(signed) is None  # an hpt 0.5 file recorded none: nothing to check


def test_a_re_signed_file_passes_as_documented(signed):
    """What the hash does not protect against (docs/reliability.md): someone who edits the weights and recomputes
    the hash as hpt does. A changed byte alone is caught; re-signed, the file reads as written."""
    header, data = _header(signed)
    edited = bytearray(data)
    edited[0] ^= 0xFF
    _rewrite(signed, header, bytes(edited))
    assert modified_since_written(signed) is True
    header["__metadata__"]["hpt_file_sha256"] = "0" * 64
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    prefix = len(encoded).to_bytes(8, "little")
    digest = hashlib.sha256(prefix + encoded + bytes(edited)).hexdigest()
    signed.write_bytes(prefix + encoded.replace(b"0" * 64, digest.encode(), 1) + bytes(edited))
    assert modified_since_written(signed) is False


def test_a_modified_base_is_refused_unless_allowed_and_then_recorded(digits, tmp_path, tiny_pretrain, hpt_here):
    """A run's backbone as the --base of the next: modified, refused in one line before any work; with
    --allow-modified, used, said, and recorded in what the new run exports. `hpt eval` and `hpt embed` of it warn."""
    first = tmp_path / "first"
    assert tiny_pretrain(digits["pretrain"], first, 2) == 0
    header, data = _header(first / "backbone.safetensors")
    edited = bytearray(data)
    edited[-1] ^= 0x01  # one bit of one weight
    _rewrite(first / "backbone.safetensors", header, bytes(edited))
    second = tmp_path / "second"
    refused = hpt_here("pretrain", "--data", digits["pretrain"], "--out", second, "--base", first, "--steps", "2")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "was modified since hpt wrote it" in refused.stderr and "--allow-modified" in refused.stderr
    assert not second.exists()
    assert tiny_pretrain(digits["pretrain"], second, 2, "--base", str(first), "--allow-modified") == 0
    resolved = read_provenance(second / "backbone.safetensors")["resolved"]
    assert resolved["modified_inputs"] == [f"--base '{(first / 'backbone.safetensors').resolve()}'"]
    evaluated = hpt_here("eval", first, "--train", digits["train"], "--test", digits["test"], "--workers", "0",
                         "--out", tmp_path / "eval.json")  # fmt: skip
    assert evaluated.returncode == 0 and "WARNING: " in evaluated.stderr
    assert "was modified since hpt wrote it" in evaluated.stderr
    embedded = hpt_here("embed", first, "--data", digits["test"], "--out", tmp_path / "embedded")
    assert embedded.returncode == 0 and "was modified since hpt wrote it" in embedded.stderr


@pytest.fixture(scope="module")
def many_labelled(tmp_path_factory) -> Path:
    """Real digits with 150 labelled images a class in each split: the monitor's evaluation of the Lite0 at 128 px
    takes ~10 s on an idle 2-core machine (measured: 21.4 s for the two of a 1-step run), longer under load."""
    return builtin.write_splits("mnist-5k", tmp_path_factory.mktemp("many"), unlabelled=64, per_class=150)


def test_a_stop_signal_during_the_first_evaluation_stops_the_run_in_seconds(many_labelled, tmp_path):
    """SIGTERM while the starting point is evaluated: exit 143 at step 0, nothing trained, no checkpoint, no
    step-0 score half-written. Before, the evaluation ran to its end, a step was trained, and the run stopped at
    step 1 (minutes on a big monitor split; a scheduler's grace period is often 30-120 s): the message tells the
    two apart on any machine. The time is a bound against a hang, not the measurement: one batch of features and the
    process's exit, under 10 s on an idle 2-core machine, 11.5 s once with the cores shared three ways (a study and
    the suite's two workers); the evaluation left to its end took 24 s idle."""
    run = tmp_path / "run"
    args = [
        "pretrain", "--data", many_labelled["pretrain"], "--out", run, "--backbone", "timm:tf_efficientnet_lite0",
        "--steps", "2", "--batch-size", "16", "--image-size", "128", "--workers", "0", "--monitor-train",
        many_labelled["train"], "--monitor-test", many_labelled["test"], "--set", "monitor.label_free_sample=0",
        "--set", "train.view_grid=1", "--set", "train.loggers=none",
    ]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "hpt", *map(str, args)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (run / "views.png").is_file():  # drawn just before the starting point is evaluated
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the run did not get to its views"
        time.sleep(0.05)
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=120)
    took = time.monotonic() - sent
    said = process.stderr.read() if process.stderr else ""
    assert code == 143 and took < 60, (code, took, said)
    assert "stopped by SIGTERM at step 0; nothing was trained yet" in " ".join(said.split())
    assert not (run / "checkpoint.safetensors").exists()
    assert not [line for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_the_view_grid_counts_what_it_drew(tmp_path):
    """A folder of 2 images and a grid of 8 asked: 2 drawn, said as 2 (it said "8 images"), 6 tiles in the grid."""
    folder = tmp_path / "two"
    folder.mkdir()
    for i in range(2):
        _astronaut().rotate(90 * i).save(folder / f"{i}.png")
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    grid, drawn = view_grid(find_images(str(folder)), RGB, eval_view(32, mean, std), 8, 0, mean, std)
    assert drawn == 2
    tile = 32 * -(-MIN_TILE // 32) + 2  # tiles are enlarged to at least MIN_TILE pixels, 2 of padding between
    assert grid.shape[-1] == 6 * tile + 2 and grid.shape[-2] == tile + 2  # one row: 2 images x (as is + 2 views)


def test_a_runs_own_config_loads_though_it_records_other_methods_settings(tmp_path):
    """A run started before this check (a BYOL run given MoCo's queue size, as the studies did) resumes from its
    config.yaml, which records every method's section: a record, not a request. A flag for another method given
    with it is still refused."""
    config = load_config(None, {"method": "byol"}).to_dict()
    config["mocov2"]["queue_size"] = 64
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_config(tmp_path / "config.yaml").method == "byol"
    with pytest.raises(HptError, match="^config: dino.out_dim is set"):  # the flag's doing, not the file's
        load_config(tmp_path / "config.yaml", {"dino.out_dim": 100})
    (tmp_path / "small.yaml").write_text("method: byol\nmocov2: {queue_size: 64}\n")  # a user's small diff
    with pytest.raises(HptError, match="mocov2.queue_size is set"):
        load_config(tmp_path / "small.yaml")
