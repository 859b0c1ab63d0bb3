"""Reliability: a killed run resumes bit for bit, a full disk loses nothing, bad images are skipped and listed,
and a run that goes wrong numerically stops (or warns) with its last good checkpoint intact."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import as_flags

from hpt.checkpoints.files import read_tensors
from hpt.config import load_config
from hpt.core.run_files import SKIPPED, read_metrics
from hpt.data.screen import read_skipped
from hpt.errors import HptError
from hpt.train.loop import pretrain

TINY = "timm:test_resnet"  # a real 0.4M-parameter ResNet with BatchNorm: fast enough to kill many times


def _hpt(*args) -> list[str]:
    return [sys.executable, "-m", "hpt", *map(str, args)]


def _pretrain_args(data: Path, run: Path, method: str, steps: int) -> list:
    return [
        "pretrain",
        "--data",
        data,
        "--out",
        run,
        "--backbone",
        TINY,
        "--method",
        method,
        "--steps",
        steps,
        "--batch-size",
        "8",
        "--image-size",
        "16",
        "--workers",
        "0",
        "--set",
        "train.log_every=1",
        "--set",
        "train.checkpoint_every=4",
        *as_flags(
            {"mocov2.queue_size": 32, "swav.prototypes": 10, "swav.queue_start_step": 6, "swav.queue_size": 32},
            method,
        ),
    ]


def _kill_at(args: list, run: Path, step: int) -> None:
    """Start the run and SIGKILL it once its metrics show `step` (it may get a step or two further)."""
    process = subprocess.Popen(_hpt(*args), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((run / "metrics.jsonl").is_file() and any(m["step"] >= step for m in read_metrics(run))):
        assert process.poll() is None, f"the run ended before step {step}: {process.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return read_tensors(run / "checkpoint.safetensors")[0]


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"{len(different)} tensors differ, first {different[:3]}"


# SimCLR keeps no state of its own; two kills of MoCo: a resumed run killed again resumes too (a third cost suite time)
@pytest.mark.parametrize("method,kills", [("mocov2", 2), ("byol", 1), ("swav", 1)])
def test_a_run_killed_at_random_steps_resumes_bit_for_bit(method, kills, digits, tmp_path, hpt_here):
    # Killed between steps 5 and 19, at least 28 steps before the end: the poller in `_kill_at` sees its step while
    # the run is still going even when another process starves it of the CPU for a while (with 4 steps to spare, a
    # loaded machine could let the run finish first).
    steps, kill_points = 48, range(5, 20)
    whole = tmp_path / "whole"  # the reference, uninterrupted: run in this process (the same threads, see conftest)
    done = hpt_here(*_pretrain_args(digits["pretrain"], whole, method, steps))
    assert done.returncode == 0, done.stderr

    run = tmp_path / "killed"
    args = _pretrain_args(digits["pretrain"], run, method, steps)
    rng = random.Random(f"{method}-kills")
    for attempt, at in enumerate(sorted(rng.sample(kill_points, kills))):  # after the first checkpoint (4)
        _kill_at(args if attempt == 0 else [*args, "--resume"], run, at)
        assert not (run / "backbone.safetensors").exists()
    refused = hpt_here(*args)  # a refusal: no process needed
    assert refused.returncode == 2 and "pass --overwrite to replace them, --resume to continue" in refused.stderr
    checkpoint_step = json.loads((run / "checkpoint.json").read_text())["steps"]
    resumed = subprocess.run(_hpt(*args, "--resume"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {checkpoint_step} of {steps}" in resumed.stderr

    _assert_bitwise_equal(_weights(whole), _weights(run))  # model, momentum encoder, queue, optimiser, RNG
    _assert_bitwise_equal(
        read_tensors(whole / "backbone.safetensors")[0], read_tensors(run / "backbone.safetensors")[0]
    )
    losses = {m["step"]: m["last_loss"] for m in read_metrics(whole)}
    assert {m["step"]: m["last_loss"] for m in read_metrics(run)} == losses  # the same steps, logged once each


def _tiny_config(data: Path, **overrides):
    settings = {
        "data.path": str(data),
        "data.image_size": 16,
        "data.num_workers": 0,
        "model.backbone": TINY,
        "train.batch_size": 8,
        "train.log_every": 1,
        "mocov2.queue_size": 32,
        **overrides,
    }
    return load_config(None, settings)


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(digits, tmp_path, monkeypatch):
    """ENOSPC from the OS write of the second checkpoint: a clear error, the first checkpoint intact and resumable."""
    run, real_write = tmp_path / "run", os.write

    def write(fd: int, data) -> int:  # the disk fills up once the first checkpoint is on it
        target = os.readlink(f"/proc/self/fd/{fd}")
        if (
            target.startswith(str(run / "checkpoint.safetensors."))
            and target.endswith(".tmp")
            and (run / "checkpoint.safetensors").exists()
        ):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    config = _tiny_config(digits["pretrain"], **{"train.steps": 6, "train.checkpoint_every": 2})
    monkeypatch.setattr(os, "write", write)
    with pytest.raises(
        HptError,
        match=r"could not write '.*checkpoint.safetensors' \(No space left on device\); "
        "the previous file there is intact",
    ):
        pretrain(config, run)
    monkeypatch.undo()

    assert json.loads((run / "checkpoint.json").read_text())["steps"] == 2
    assert read_tensors(run / "checkpoint.safetensors")[1]["steps"] == 2
    assert not list(run.glob("*.tmp")) and not (run / "backbone.safetensors").exists()
    assert pretrain(config, run, resume=True).steps == 6


def test_a_run_skips_and_lists_the_bad_files_and_stops_when_there_are_too_many(digits, bad_images, tmp_path, hpt_here):
    data = tmp_path / "data"
    shutil.copytree(digits["pretrain"], data)
    expected = bad_images(data / "batch-7")
    run = tmp_path / "run"
    args = _pretrain_args(data, run, "simclr", steps=2)
    done = hpt_here(*args)
    assert done.returncode == 0, done.stderr
    assert "skipped 5 unusable files of 261" in done.stderr
    listed = read_skipped(run / SKIPPED)
    assert sorted(Path(path).name for path in listed) == sorted(expected)
    for path, reason in listed.items():
        assert reason.startswith(expected[Path(path).name])
    data = json.loads((run / "backbone.json").read_text())["data"]
    assert data["images"] == 256 and data["held_out"] == 0  # RankMe is logged only: nothing held out

    strict = hpt_here(*args, "--overwrite", "--set", "data.max_bad_fraction=0.01")
    assert strict.returncode == 2 and len(strict.stderr.strip().splitlines()) == 1, strict.stderr
    assert "5 of 261 files cannot be used, more than data.max_bad_fraction (1%) allows" in strict.stderr
    assert (run / SKIPPED).is_file() and (run / "backbone.safetensors").is_file()  # refused before any write


def test_a_run_that_diverges_stops_with_its_last_good_checkpoint(digits, tmp_path, hpt_here):
    run = tmp_path / "run"
    args = [
        *_pretrain_args(digits["pretrain"], run, "simclr", steps=12),
        "--set",
        "optim.lr=1e8",
        "--set",
        "train.checkpoint_every=1",
    ]
    result = hpt_here(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    found = re.search(
        r"the (loss|weights) became (nan|inf|-inf|non-finite) at step (\d+); the last good checkpoint "
        r"\(step (\d+)\) is intact in '.*checkpoint.safetensors'; start again with a lower learning rate",
        error,
    )
    assert found, error
    bad_step, good_step = int(found[3]), int(found[4])
    tensors, provenance = read_tensors(run / "checkpoint.safetensors")
    assert provenance["steps"] == good_step < bad_step < 12
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    assert not (run / "backbone.safetensors").exists()


def test_a_collapse_warning_is_logged_once_with_the_spread(digits, tmp_path, hpt_here):
    """A healthy run's spread is well under 1 at init; a threshold above it must warn, once, and log the figure."""
    run = tmp_path / "run"
    args = [*_pretrain_args(digits["pretrain"], run, "mocov2", steps=6), "--set", "train.collapse_threshold=1.0"]
    result = hpt_here(*args)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert said.count("the embeddings are collapsing at step 1 (spread") == 1 and said.count("collapsing") == 1
    spreads = [m["embedding_spread"] for m in read_metrics(run)]
    assert len(spreads) == 6 and all(0 < s < 1 for s in spreads)
