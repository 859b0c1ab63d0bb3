"""One call from Python (`hpt.pretrain(data=..., out=..., **settings)`), its callbacks and its typed result, on real
runs; and the notebook-style example that CI runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hpt
from hpt.core.run_files import read_metrics, read_monitor
from hpt.errors import HptError
from tests.conftest import TINY_RUN, for_method

ROOT = Path(__file__).parents[1]


class Recorder(hpt.Callback):
    """Every call, in order, as (hook, step)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.steps: list[hpt.StepEnd] = []
        self.evaluations: list[hpt.Evaluation] = []
        self.result: hpt.RunSummary | None = None

    def on_step(self, step: hpt.StepEnd) -> None:
        self.calls.append(("step", step.step))
        self.steps.append(step)

    def on_evaluation(self, evaluation: hpt.Evaluation) -> None:
        self.calls.append(("evaluation", evaluation.step))
        self.evaluations.append(evaluation)

    def on_checkpoint(self, checkpoint: hpt.Checkpointed) -> None:
        self.calls.append(("checkpoint", checkpoint.step))
        assert checkpoint.path.is_file()  # called once the file is on disk

    def on_finish(self, result: hpt.RunSummary) -> None:
        self.calls.append(("finish", result.steps))
        self.result = result
        assert result.backbone is not None and result.backbone.is_file()


def _settings(**more: object) -> dict[str, object]:
    """TINY_RUN's dotted keys for MoCo v2, and `more`."""
    return {**for_method(TINY_RUN, "mocov2"), "monitor.label_free_sample": 0, "train.log_every": 1, **more}


@pytest.mark.slow  # a real run with a labelled monitor
def test_one_call_with_keyword_settings_calls_back_in_order_and_returns_the_pick(digits, tmp_path):
    recorder = Recorder()
    out = tmp_path / "run"
    result = hpt.pretrain(
        data=digits["pretrain"],  # a Path: taken as --data takes a string
        out=out,
        steps=4,
        monitor_train=digits["train"],
        monitor_test=digits["test"],
        monitor_every=2,
        callbacks=[recorder],
        **_settings(**{"train.checkpoint_every": 3}),
    )
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert (
        written["train"]["steps"] == 4
        and written["monitor"]["every"] == 2
        and written["train"]["checkpoint_every"] == 3
    )
    assert written["data"]["path"] == str(digits["pretrain"].resolve())
    assert recorder.calls == [
        ("evaluation", 0), ("step", 1), ("step", 2), ("evaluation", 2), ("step", 3), ("checkpoint", 3),
        ("step", 4), ("evaluation", 4), ("checkpoint", 4), ("finish", 4),
    ]  # fmt: skip
    logged = {m["step"]: m for m in read_metrics(out) if "loss" in m}
    assert [s.loss for s in recorder.steps] == [logged[s.step]["loss"] for s in recorder.steps]  # log_every 1
    assert [s.lr for s in recorder.steps] == [logged[s.step]["lr"] for s in recorder.steps]
    monitored = read_monitor(out)
    assert [e.step for e in recorder.evaluations] == [m["step"] for m in monitored]
    assert all(
        e.scores[k] == m[k] for e, m in zip(recorder.evaluations, monitored) for k in e.scores
    )  # what metrics.jsonl records, value for value
    assert "95% CI" in recorder.evaluations[-1].described()

    assert recorder.result == result and result.steps == 4 and result.backbone == out / "backbone.safetensors"
    assert result.picked_by == "knn_val_top1_k20" and result.picked_step in (0, 2, 4)
    assert result.scores is not None and "knn_top1_k20_se" in result.scores
    assert result.compared is not None  # the pick against the start and the last step, on the test images
    scored = hpt.evaluate(out, digits["train"], digits["test"], protocol="knn", batch_size=64)
    assert scored["protocol"] == "knn" and "knn_top1_k20_ci95_low" in scored["metrics"]
    assert (out / "eval.json").is_file()
    said = hpt.export_model(out, format="torchscript")
    assert (
        said[-1].startswith(f"wrote {out / 'backbone.torchscript.pt'}") and (out / "backbone.torchscript.pt").is_file()
    )
    words = result.verdict()
    if result.picked_step == 0:
        assert words.startswith("the starting point itself was exported") and "it against the last step" in words
    else:
        assert words.startswith(f"step {result.picked_step} against the start: ") and "exact McNemar" in words


def test_settings_are_checked_as_on_the_command_line(digits, tmp_path, tiny_config):
    with pytest.raises(HptError, match=r"hpt.pretrain: unknown setting 'batchsize'; expected one of .*batch_size"):
        hpt.pretrain(data=digits["pretrain"], out=tmp_path / "a", batchsize=8)
    with pytest.raises(HptError, match=r"train.steps"):
        hpt.pretrain(data=digits["pretrain"], out=tmp_path / "b", steps=0)
    with pytest.raises(HptError, match=r"out= is needed"):
        hpt.pretrain(data=digits["pretrain"])
    with pytest.raises(HptError, match=r"hpt.evaluate: unknown setting 'protocl'; expected one of .*protocol"):
        hpt.evaluate("run", digits["train"], digits["test"], protocl="linear")
    with pytest.raises(HptError, match=r"hpt.export_model: format 'tflite'; expected hub, onnx or torchscript"):
        hpt.export_model("run", format="tflite")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow  # two real runs
def test_a_config_and_its_overrides_and_the_old_call(digits, tmp_path, tiny_config):
    """A `PretrainConfig` with keyword settings over it, and `pretrain(config, out)` as before: the settings
    given win, the rest is the config's."""
    config = tiny_config(digits["pretrain"], **{"train.steps": 1, "monitor.label_free_sample": 0, "optim.lr": 0.01})
    hpt.pretrain(config=config, out=tmp_path / "over", steps=2, lr=0.02)
    over = yaml.safe_load((tmp_path / "over" / "config.yaml").read_text())
    assert (over["train"]["steps"], over["optim"]["lr"], over["data"]["image_size"]) == (2, 0.02, 16)
    summary = hpt.pretrain(config, tmp_path / "old")
    assert summary.steps == 1 and yaml.safe_load((tmp_path / "old" / "config.yaml").read_text())["optim"]["lr"] == 0.01
    assert summary.verdict().startswith("not compared with its start: no labelled monitor splits")


@pytest.mark.slow  # the example, in its own process, at a tiny size
def test_the_python_example_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python_api.py"), "--out", str(tmp_path), "--steps", "2",
         "--unlabelled", "64", "--per-class", "5"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("[callback] step")] == [
        "[callback] step 0", "[callback] step 1", "[callback] step 2"
    ]  # fmt: skip
    assert "2 steps, loss " in done.stdout and "checkpoints at steps [1, 2]" in done.stdout
    assert f"-> {tmp_path / 'run' / 'backbone.safetensors'}" in done.stdout
    assert "against the ImageNet base as it was: " in done.stdout
