"""Runs that survive clusters and people: one writer per run folder, a stop signal saves the step and the run
resumes from the folder alone to the bit, paths compare resolved, and hostile YAML is one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hpt.checkpoints.files import read_provenance, read_tensors
from hpt.core.run_files import read_metrics
from hpt.train.loop import pretrain
from hpt.train.run_dir import check_run_dir


def _hpt(*args, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hpt", *map(str, args)], stderr=subprocess.PIPE, text=True, cwd=cwd)


def _run_args(data: Path, run: Path, steps: int) -> list:
    return [
        "pretrain", "--data", data, "--out", run, "--backbone", "timm:test_resnet", "--steps", steps,
        "--batch-size", "8", "--image-size", "16", "--workers", "0", "--set", "train.log_every=1",
        "--set", "train.checkpoint_every=1000", "--set", "mocov2.queue_size=32",
        "--set", "monitor.label_free_sample=0",
    ]  # fmt: skip


def _wait_for_step(process: subprocess.Popen, run: Path, step: int) -> None:
    deadline = time.monotonic() + 120
    while not ((run / "metrics.jsonl").is_file() and any(m["step"] >= step for m in read_metrics(run))):
        assert process.poll() is None, f"the run ended before step {step}: {process.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _finished(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    return process.returncode, " ".join(err.split())


def _same(a: Path, b: Path, name: str) -> None:
    ta, tb = read_tensors(a / name)[0], read_tensors(b / name)[0]
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), name


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_saves_the_step_and_the_folder_alone_resumes_it_bit_for_bit(stop, digits, tmp_path, hpt_here):
    """No periodic checkpoint before the end (checkpoint_every 1000): all that survives the signal is the
    checkpoint it writes. The resume names nothing but the folder, and refuses a flag that disagrees."""
    steps = 40
    whole = tmp_path / "whole"  # the reference, uninterrupted: run in this process (the same threads, see conftest)
    assert hpt_here(*_run_args(digits["pretrain"], whole, steps)).returncode == 0

    run = tmp_path / "stopped"
    process = _hpt(*_run_args(digits["pretrain"], run, steps))
    _wait_for_step(process, run, 5)
    process.send_signal(stop)
    code, said = _finished(process)
    assert code == 128 + int(stop), said
    stopped_at = read_provenance(run / "checkpoint.safetensors")["steps"]
    assert 5 <= stopped_at < steps and not (run / "backbone.safetensors").exists()
    assert f"stopped by {stop.name} at step {stopped_at}; the checkpoint is written" in said

    refused = hpt_here("pretrain", "--out", run, "--resume", "--lr", "0.5")  # a refusal: no process needed
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and "--resume:" in said and "optim.lr: None then, 0.5 now" in said
    code, said = _finished(_hpt("pretrain", "--out", run, "--resume"))  # the folder alone
    assert code == 0, said
    assert f"resuming from step {stopped_at} of {steps}" in said
    _same(whole, run, "checkpoint.safetensors")  # model, momentum encoder, queue, optimiser and RNG states
    _same(whole, run, "backbone.safetensors")


def test_a_second_writer_is_refused_while_the_first_runs(digits, tmp_path, hpt_here):
    """A double-submitted job with --overwrite would delete the running job's files: it stops at the lock,
    naming the holder, and the first run goes on as if alone (stopped here by SIGTERM once the second is
    refused, so that the test does not wait for 2,000 steps). The second writer is this test's own process."""
    run = tmp_path / "run"
    first = _hpt(*_run_args(digits["pretrain"], run, 2000))
    _wait_for_step(first, run, 2)
    second = hpt_here(*_run_args(digits["pretrain"], run, 2000), "--overwrite")
    said = " ".join(second.stderr.split())
    assert second.returncode == 2 and f"is in use by process {first.pid} on" in said
    assert "one run writes a folder" in said
    assert first.poll() is None  # still running
    first.send_signal(signal.SIGTERM)
    assert _finished(first)[0] == 128 + int(signal.SIGTERM)
    stopped_at = read_provenance(run / "checkpoint.safetensors")["steps"]
    assert [m["step"] for m in read_metrics(run)] == list(range(1, stopped_at + 1))  # one run's lines, each once
    again = hpt_here(*_run_args(digits["pretrain"], run, 2), "--overwrite")
    assert again.returncode == 0, again.stderr  # the lock went with its holder


def test_the_same_folder_named_relatively_or_absolutely_is_the_same_run(digits, tmp_path, monkeypatch, tiny_config):
    monkeypatch.chdir(digits["pretrain"].parent)
    run = tmp_path / "run"
    pretrain(tiny_config("pretrain", **{"train.steps": 2}), run)
    assert read_provenance(run / "backbone.safetensors")["data"]["path"] == str(digits["pretrain"].resolve())
    assert check_run_dir(run, tiny_config(digits["pretrain"], **{"train.steps": 2}), False, True)


def test_hostile_yaml_is_one_line_and_writes_nothing(tmp_path):
    bomb = tmp_path / "bomb.yaml"  # nine nested levels of aliases: 9^9 strings once expanded
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\n")
    large = tmp_path / "large.yaml"
    large.write_text("# padding\n" * 200_000)
    for config, expected in ((bomb, "expands to more than 100000 values"), (large, "bytes; a config holds at most")):
        code, said = _finished(_hpt("pretrain", "--config", config, "--out", tmp_path / "run"))
        assert code == 2 and expected in said and "Traceback" not in said
    assert not (tmp_path / "run").exists()


def test_two_processes_stop_at_the_same_step_and_resume_from_the_folder(digits, tmp_path):
    """`--devices 2` on the CPU: SIGTERM to the process that started the other; both agree on the step (the
    decision goes through an all-reduce), one checkpoint and one line come out, and the folder resumes.
    100 steps: the signal comes at step 3, ~5 s of steps before the end even at full speed; the resume runs
    the rest in one process."""
    run = tmp_path / "run"
    process = _hpt(*_run_args(digits["pretrain"], run, 100), "--devices", "2", "--accelerator", "cpu")
    _wait_for_step(process, run, 3)
    process.send_signal(signal.SIGTERM)
    code, said = _finished(process)
    stopped_at = read_provenance(run / "checkpoint.safetensors")["steps"]
    assert code == 128 + int(signal.SIGTERM) and said.count(f"stopped by SIGTERM at step {stopped_at}") == 1, said
    assert max(m["step"] for m in read_metrics(run)) == stopped_at  # no process went a step further

    code, said = _finished(_hpt("pretrain", "--out", run, "--resume", "--steps", "100"))
    assert code == 0 and f"resuming from step {stopped_at} of 100" in said, said
