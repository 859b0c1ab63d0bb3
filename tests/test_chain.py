"""Chains of stages on real images: run, lineage, kill and re-run (a killed run: test_reliability.py)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpt.checkpoints.files import sha256_file
from hpt.core.run_files import read_metrics
from hpt.errors import HptError
from hpt.pipeline.chain import load_chain

LITE0 = "timm:tf_efficientnet_lite0"


def _chain(tmp_path: Path, digits: dict[str, Path], source_steps: int = 3) -> Path:
    chain = {
        "backbone": LITE0,
        "defaults": {
            "data": {"image_size": 32, "num_workers": 0},
            "train": {"batch_size": 16, "steps": 3},
            "mocov2": {"queue_size": 32},
        },
        "stages": [
            {
                "name": "source",
                "data": {"path": str(digits["pretrain"])},
                "model": {"init": "full"},
                "train": {"steps": source_steps},
            },
            {"name": "middle", "data": {"path": str(digits["train"])}},
            {
                "name": "target",
                "data": {"path": str(digits["test"])},
                "model": {"init": "bn-only"},
                "transfer": {"target_sample": 32},
            },
        ],
    }
    path = tmp_path / f"chain-{source_steps}.yaml"
    path.write_text(yaml.safe_dump(chain))
    return path


def _hpt(*args) -> list[str]:
    return [sys.executable, "-m", "hpt", *map(str, args)]


def _wait_for(condition, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stderr.read() if process.stderr else "process ended early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_chain_runs_survives_a_kill_between_stages_and_reads_back(tmp_path, digits, lite0_file, hpt_here):
    """The kill needs a process of its own; the re-run, `inspect` and the refusal run in the test's."""
    chain, out = _chain(tmp_path, digits), tmp_path / "out"
    first = subprocess.Popen(
        _hpt("chain", chain, "--out", out, "--base", lite0_file), stderr=subprocess.PIPE, text=True
    )
    source = out / "01-source"
    _wait_for(lambda: (source / "backbone.safetensors").is_file() and (source / "backbone.json").is_file(), first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    finished = {name: (source / name).stat().st_mtime_ns for name in ("backbone.safetensors", "metrics.jsonl")}

    second = hpt_here("chain", chain, "--out", out, "--base", lite0_file)
    assert second.returncode == 0, second.stderr
    assert "stage 1/3 'source': finished earlier, skipped" in second.stderr
    assert {name: (source / name).stat().st_mtime_ns for name in finished} == finished  # not redone
    runs = [out / "01-source", out / "02-middle", out / "03-target"]
    assert all((run / "backbone.safetensors").is_file() for run in runs)
    assert [m["step"] for m in read_metrics(out / "03-target")] == [3]
    # stage 3 starts with the pace of stage 2 known: the chain's time left is said; the report covers every stage
    assert re.search(
        r"stage 3/3 'target': 3 steps on .*; the chain has about \d+ s left", " ".join(second.stderr.split())
    )
    report = (out / "report" / "report.md").read_text()
    assert all(f"| {run.name} |" in report for run in runs) and (out / "report" / "training.png").is_file()

    # Each stage starts from the one before: the recorded parent is the previous stage's exported backbone.
    target = json.loads((out / "03-target" / "backbone.json").read_text())
    assert target["init"] == "bn-only" and target["base"]["path"] == str((runs[1] / "backbone.safetensors").resolve())
    assert target["base"]["sha256"] == sha256_file(runs[1] / "backbone.safetensors")

    inspect = hpt_here("inspect", out / "03-target")
    assert inspect.returncode == 0, inspect.stderr
    lines = inspect.stdout.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if marker in line)
        for marker in (
            "03-target/backbone.safetensors",
            "02-middle/backbone.safetensors",
            "01-source/backbone.safetensors",
            str(lite0_file),
        )
    ]
    assert order == sorted(order)
    assert "init bn-only" in inspect.stdout and "init full" in inspect.stdout
    assert "foreign checkpoint of timm:tf_efficientnet_lite0: layout lukemelas-efficientnet" in inspect.stdout
    assert inspect.stdout.count("[unchanged]") >= 3

    changed = hpt_here("chain", _chain(tmp_path, digits, source_steps=4), "--out", out, "--base", lite0_file)
    assert changed.returncode == 2 and "train.steps: 3 then, 4 now" in changed.stderr


@pytest.mark.parametrize(
    "chain,message",
    [
        ({"stages": []}, "'stages' must be a non-empty list"),
        ({"stage": [{"name": "a"}]}, "unknown key 'stage'"),
        ({"stages": [{"name": "a"}, {"name": "a"}]}, "stage name 'a' must be unique"),
        (
            {"stages": [{"name": "a"}, {"name": "b", "model": {"base": "x"}}]},
            "stage 'b' starts from the previous stage",
        ),
        ({"stages": [{"name": "a", "train": {"stepz": 3}}]}, "stage 'a': unknown key 'train.stepz'"),
    ],
)
def test_bad_chains_are_refused_before_any_work(tmp_path, chain, message):
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(chain))
    with pytest.raises(HptError, match=message):
        load_chain(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
