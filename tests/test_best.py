"""Never worse than the start without saying so: the best evaluation's backbone is kept and exported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hpt.backbones import create_backbone
from hpt.checkpoints.files import read_provenance, read_tensors
from hpt.checkpoints.lineage import describe
from hpt.checkpoints.provenance import FileProvenance
from hpt.config import load_config
from hpt.core.run_files import read_metrics, read_monitor
from hpt.eval.runner import EvalOptions, evaluate
from hpt.eval.uncertainty import unpack
from hpt.train import plan
from hpt.train.best import BestBackbone
from hpt.train.loop import pretrain

TINY = "timm:test_resnet"


def _eight_steps(tiny_config):
    return lambda data, **overrides: tiny_config(data, **{"train.steps": 8, **overrides})


class ScriptedMonitor:
    """Scores scripted per evaluation (the run evaluates at step 0, every `monitor.every` steps and at the end);
    it keeps the weights it was shown at each one. Only the score is scripted: the run and its weights are real."""

    selects_by = "knn_top1_k20"
    labelled = None  # no per-image outcomes: the finish has no paired comparison to make

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.seen: list[dict[str, torch.Tensor]] = []

    def __call__(self, backbone, device, step=None):
        self.seen.append({k: v.clone() for k, v in backbone.native_state_dict().items()})
        return {"knn_top1_k20": self.scores[len(self.seen) - 1]}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_exported_backbone_is_the_peak_evaluation(digits, tmp_path, monkeypatch, tiny_config):
    _config = _eight_steps(tiny_config)
    monitor = ScriptedMonitor([0.5, 0.6, 0.9, 0.7, 0.4])  # steps 0, 2, 4, 6, 8: the peak is step 4
    monkeypatch.setattr(plan, "build_monitor", lambda *args: monitor)
    run = tmp_path / "run"
    pretrain(_config(digits["pretrain"], **{"monitor.every": 2}), run)
    exported = read_tensors(run / "backbone.safetensors")[0]
    assert _same(exported, monitor.seen[2]) and not _same(exported, monitor.seen[4])
    provenance = read_provenance(run / "backbone.safetensors")
    assert provenance["selected"] == {"step": 4, "by": "knn_top1_k20", "value": 0.9, "scores": {"knn_top1_k20": 0.9}}
    assert [(e["step"], e["knn_top1_k20"]) for e in provenance["monitor"]] == [
        (0, 0.5),
        (2, 0.6),
        (4, 0.9),
        (6, 0.7),
        (8, 0.4),
    ]
    assert provenance["steps"] == 8
    assert "the backbone of step 4, the best by knn_top1_k20 (0.9000)" in describe(str(run))  # hpt inspect


def test_a_run_that_never_beats_its_start_exports_the_start_and_says_so(
    digits, tmp_path, monkeypatch, capsys, tiny_config
):
    _config = _eight_steps(tiny_config)
    monitor = ScriptedMonitor([0.9, 0.5, 0.9])  # steps 0, 4, 8: the end only ties the start
    monkeypatch.setattr(plan, "build_monitor", lambda *args: monitor)
    run = tmp_path / "run"
    pretrain(_config(digits["pretrain"], **{"monitor.every": 4}), run)
    assert _same(read_tensors(run / "backbone.safetensors")[0], monitor.seen[0])
    said = " ".join(capsys.readouterr().err.split())
    assert "no evaluation beat the starting point by knn_top1_k20 (0.9000 at step 0, 0.9000 at the end)" in said

    last = tmp_path / "last"
    monitor = ScriptedMonitor([0.9, 0.5, 0.9])
    monkeypatch.setattr(plan, "build_monitor", lambda *args: monitor)
    pretrain(_config(digits["pretrain"], **{"monitor.every": 4, "monitor.export": "last"}), last)
    assert _same(read_tensors(last / "backbone.safetensors")[0], monitor.seen[2])


class ScriptedOutcomes(ScriptedMonitor):
    """Validation scores scripted as per-image outcomes on 40 images (the first `right` of them right), kept as
    the labelled monitor keeps them, so that the pick can tell steps apart by their noise."""

    selects_by, reports = "knn_val_top1_k20", "knn_top1_k20"

    def __init__(self, right: list[int]) -> None:
        super().__init__([r / 40 for r in right])
        self.right, self.labelled = right, self
        self.outcomes: dict[int, torch.Tensor] = {}
        self.validation_outcomes: dict[int, torch.Tensor] = {}

    def __call__(self, backbone, device, step=None):
        value = super().__call__(backbone, device, step)["knn_top1_k20"]
        self.outcomes[step] = self.validation_outcomes[step] = torch.arange(40) < self.right[len(self.seen) - 1]
        return {"knn_val_top1_k20": value, "knn_top1_k20": value}

    def describe(self) -> str:
        return "monitor: scripted"


def test_monitor_pick_latest_tied_exports_the_latest_step_the_validation_images_cannot_tell_from_the_best(
    digits, tmp_path, monkeypatch, capsys, tiny_config
):
    """Steps 0, 2, 4, 6, 8 right on 30, 26, 31, 20, 29 of 40 validation images (each a prefix, so the images
    that differ all go one way). By default the highest, step 4, is exported. With `latest-tied`: step 2 loses 4
    to step 0 (exact McNemar p = 0.125: kept, the later), step 4
    leads, step 6 loses 11 (p = 0.001: not kept), step 8 loses 2 to step 4 (kept): step 8 is exported, and said.
    When every later step loses beyond the noise, the starting point is exported, and that is said."""
    _config = _eight_steps(tiny_config)
    monitor = ScriptedOutcomes([30, 26, 31, 20, 29])
    monkeypatch.setattr(plan, "build_monitor", lambda *args: monitor)
    highest = tmp_path / "highest"  # the default: the first highest validation score, step 4
    pretrain(_config(digits["pretrain"], **{"monitor.every": 2}), highest)
    assert _same(read_tensors(highest / "backbone.safetensors")[0], monitor.seen[2])
    capsys.readouterr()
    monitor = ScriptedOutcomes([30, 26, 31, 20, 29])
    monkeypatch.setattr(plan, "build_monitor", lambda *args: monitor)
    run = tmp_path / "run"
    pretrain(_config(digits["pretrain"], **{"monitor.every": 2, "monitor.pick": "latest-tied"}), run)
    assert _same(read_tensors(run / "backbone.safetensors")[0], monitor.seen[4])
    selected = read_provenance(run / "backbone.safetensors")["selected"]
    assert (selected["step"], selected["leader"], selected["leader_value"]) == (8, 4, 31 / 40)
    assert selected["tied"]["lost"] == 2 and selected["tied"]["verdict"] == "no detectable difference"
    said = " ".join(capsys.readouterr().err.split())
    assert (
        "backbone.safetensors holds step 8, the latest step whose validation images cannot tell it from the best "
        "by knn_val_top1_k20 (step 4, 0.7750; step 8 against it: no detectable difference (-5.0 points" in said
    )
    kept = json.loads((run / "monitor_outcomes.json").read_text())["validation"]
    assert kept["score"] == "knn_val_top1_k20" and sorted(kept["steps"], key=int) == ["0", "2", "4", "6", "8"]

    monitor = ScriptedOutcomes([30, 20, 19, 22, 18])  # every later step loses 8-12 images to step 0
    monkeypatch.setattr(plan, "build_monitor", lambda *args: monitor)
    start = tmp_path / "start"
    pretrain(_config(digits["pretrain"], **{"monitor.every": 2, "monitor.pick": "latest-tied"}), start)
    assert _same(read_tensors(start / "backbone.safetensors")[0], monitor.seen[0])
    said = " ".join(capsys.readouterr().err.split())
    assert "every later evaluation scored worse than the starting point on the validation images, beyond" in said


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_a_real_knn_monitor_picks_a_backbone_that_reproduces_its_score(digits, lite0_file, tmp_path):
    """Real base, real kNN: `hpt eval` of the exported backbone gives exactly the score it was picked by."""
    run = tmp_path / "run"
    config = load_config(
        None,
        {
            "data.path": str(digits["pretrain"]),
            "data.image_size": 32,
            "data.num_workers": 0,
            "model.backbone": "timm:tf_efficientnet_lite0",
            "model.base": str(lite0_file),
            "train.batch_size": 16,
            "train.steps": 4,
            "mocov2.queue_size": 64,
            "monitor.train": str(digits["train"]),
            "monitor.test": str(digits["test"]),
            "monitor.every": 2,
        },
    )
    pretrain(config, run)
    evaluations = read_monitor(run)
    assert [e["step"] for e in evaluations] == [0, 2, 4] and all("rankme" in e for e in evaluations)
    # evaluation time is logged apart, and left out of the training's throughput: the training lines' eval_s
    # add up to the evaluations they spanned (steps 0 and 2; step 4's is in the finish, after the last line)
    spanned = sum(e["eval_s"] for e in evaluations if e["step"] < 4)
    assert sum(line["eval_s"] for line in read_metrics(run)) == pytest.approx(spanned, rel=1e-9)
    for name in ("backbone", "best", "checkpoint"):  # typed both ways: what was written reads back unchanged
        written = read_provenance(run / f"{name}.safetensors")
        assert written is not None and FileProvenance.from_dict(written).to_dict() == written
    selected = read_provenance(run / "backbone.safetensors")["selected"]
    best = max(evaluations, key=lambda e: e["knn_val_top1_k20"])  # the first of equals, picked on validation
    assert selected["step"] == best["step"] and selected["by"] == "knn_val_top1_k20" and "leader" not in selected
    kept = json.loads((run / "monitor_outcomes.json").read_text())["validation"]  # what monitor.pick could use
    assert kept["score"] == "knn_val_top1_k20" and kept["images"] == 40  # a fifth of 20 a class, ten classes
    assert {int(step): float(unpack(text, 40).double().mean()) for step, text in kept["steps"].items()} == {
        e["step"]: pytest.approx(e["knn_val_top1_k20"]) for e in evaluations
    }
    result = evaluate(str(run), str(digits["train"]), str(digits["test"]), EvalOptions("knn", num_workers=0))
    # The same pixels (the run's recorded mean/std, size and window) and the same features up to rounding (the
    # monitor extracts them in batches of 16, `hpt eval` of 256, so the convolutions may sum in another order:
    # ~1e-7 relative); a test image whose vote is that close may flip.
    test_images = len(list(digits["test"].rglob("*.png")))
    assert abs(result["metrics"]["knn_top1_k20"] - best["knn_top1_k20"]) <= 1.5 / test_images
    assert abs(result["metrics"]["knn_top1_k20_se"] - best["knn_top1_k20_se"]) <= 0.01  # the same p, the same n
    assert result["settings"]["normalisation"]["source"] == "recorded by the model"
    recorded = read_provenance(run / "backbone.safetensors")["data"]["mean"]
    assert list(result["settings"]["normalisation"]["mean"]) == recorded
    assert not any("warning" in note for note in result["notes"])  # monitor.test picked nothing
    compared = selected["compared"]
    assert compared["score"] == "knn_top1_k20" and set(compared) <= {"score", "step_0", "last"}
    for difference in (compared[name] for name in ("step_0", "last") if name in compared):
        low, high = difference["ci95"]
        assert low <= difference["difference"] <= high and difference["images"] == test_images
    # the model card can be published: no local path (not the data's, not the base's site-packages file), the
    # start, the exported step and the last with test scores ± their standard errors
    card = (run / "README.md").read_text()
    assert str(tmp_path) not in card and str(lite0_file.parent) not in card and lite0_file.name in card
    assert "| 0 (start" in card and f"| {selected['step']} (" in card and "exported" in card
    assert "| 4 (" in card and "last)" in card
    assert card.count(" ± ") >= 2
    # scored on the images that picked the step (monitor.train, whose held-out fifth picked it): warned
    picked_on = evaluate(
        str(run), str(digits["test"]), str(digits["train"]), EvalOptions("knn", num_workers=0), tmp_path / "x.json"
    )
    assert any(note.startswith("warning: ") and "picked on" in note for note in picked_on["notes"])


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_auto_runs_its_pilots_and_records_its_choice(digits, tmp_path, tiny_config):
    _config = _eight_steps(tiny_config)
    base_run = tmp_path / "base"
    pretrain(_config(digits["pretrain"], **{"train.steps": 2}), base_run)  # a real (tiny) base: a run folder
    out = tmp_path / "auto"
    args = [
        "pretrain",
        "--auto",
        "--data",
        digits["pretrain"],
        "--out",
        out,
        "--base",
        base_run,
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--image-size",
        "16",
        "--workers",
        "0",
        "--set",
        "mocov2.queue_size=32",
        "--set",
        "auto.pilot_steps=2",
        "--monitor-train",
        digits["train"],
        "--monitor-test",
        digits["test"],
    ]
    unlabelled = subprocess.run(
        [sys.executable, "-m", "hpt", *map(str, args[:-4])], capture_output=True, text=True, timeout=300
    )
    assert unlabelled.returncode == 2 and "--auto ranks its pilots by the labelled monitor" in unlabelled.stderr
    done = subprocess.run([sys.executable, "-m", "hpt", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "auto.json").read_text())
    assert [p["recipe"] for p in record["pilots"]] == ["bn-only", "full", "full-lr/10"]
    assert record["by"] == "knn_val_top1_k20" and record["pilot_steps"] == 2  # pilots ranked on validation
    best = max(record["pilots"], key=lambda p: p["end"])
    assert record["chosen"] == best["recipe"]
    for pilot in record["pilots"]:
        assert [e["step"] for e in read_monitor(Path(pilot["run"]))] == [0, 2]
        assert read_monitor(Path(pilot["run"]))[-1]["knn_val_top1_k20"] == pilot["end"]
    config = json.loads((out / "backbone.json").read_text())["config"]
    recipe = {"bn-only": ("bn-only", 0.03), "full": ("full", 0.03), "full-lr/10": ("full", 0.003)}[best["recipe"]]
    assert (config["model"]["init"], config["optim"]["lr"]) == pytest.approx(recipe)
    assert config["train"]["steps"] == 6
    said = " ".join(done.stderr.split())
    assert f"{best['recipe']}" in said and "chosen" in said


def test_label_free_pick_holds_out_its_sample_and_picks_by_view_retrieval(digits, tmp_path, tiny_config):
    _config = _eight_steps(tiny_config)
    run = tmp_path / "run"
    pretrain(_config(digits["pretrain"], **{"monitor.every": 2, "monitor.label_free_pick": True}), run)
    provenance = read_provenance(run / "backbone.safetensors")
    assert provenance["data"]["held_out"] == 25 and provenance["data"]["images"] == 231  # a tenth of 256
    evaluations = read_monitor(run)
    best = max(evaluations, key=lambda e: (e["view_retrieval"], -e["step"]))  # a tie: the earlier step
    assert provenance["selected"]["by"] == "view_retrieval" and provenance["selected"]["step"] == best["step"]
    assert _same(read_tensors(run / "backbone.safetensors")[0], read_tensors(run / "best.safetensors")[0])


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_the_both_protocol_logs_knn_and_linear_as_each_alone_and_picks_by_linear(digits, lite0_file):
    """monitor.protocol both: on the real base, the kNN and linear scores are those of each protocol alone."""
    from hpt.checkpoints.sources import load_backbone
    from hpt.config import MonitorConfig
    from hpt.eval.monitor import LabelledMonitor, Monitor

    backbone, _ = load_backbone(str(lite0_file), "timm:tf_efficientnet_lite0", role="base")
    scores = {
        protocol: LabelledMonitor(
            MonitorConfig(train=str(digits["train"]), test=str(digits["test"]), protocol=protocol), 32, 64
        )(backbone, "cpu")
        for protocol in ("knn", "linear", "both")
    }
    assert scores["both"] == {**scores["knn"], **scores["linear"]}
    assert "knn_top1_k20" in scores["both"] and "linear_top1" in scores["both"]
    both = Monitor(
        LabelledMonitor(MonitorConfig(train=str(digits["train"]), test=str(digits["test"]), protocol="both"), 32, 64),
        None,
    )
    assert both.selects_by == "linear_val_top1"  # picked on validation, reported on test


def test_a_resume_keeps_the_leader_the_kept_step_was_tied_with(tmp_path):
    """What `--resume` reads back from best.safetensors: the kept step, and the leader it was kept behind, so that
    the next evaluation is compared with the leader, not with the kept step."""
    record = FileProvenance.from_dict(
        json.loads((Path(__file__).parent / "data" / "provenance" / "0.7-backbone.json").read_text())
    )
    backbone, path = create_backbone("timm:test_resnet"), tmp_path / "best.safetensors"
    outcomes = {0: torch.arange(40) < 30, 2: torch.arange(40) < 27, 4: torch.arange(40) < 20}
    best = BestBackbone(path, "knn_val_top1_k20", None, latest_tied=True)
    assert best.offer(0, {"knn_val_top1_k20": 0.75}, backbone, record, outcomes)
    assert best.offer(2, {"knn_val_top1_k20": 27 / 40}, backbone, record, outcomes)  # loses 3: tied, kept
    resumed = BestBackbone(path, "knn_val_top1_k20", resumed_at=2, latest_tied=True)
    assert resumed.best is not None and resumed.best.step == 2 and resumed.leader == (0, 0.75)
    assert not resumed.offer(4, {"knn_val_top1_k20": 0.5}, backbone, record, outcomes)  # loses 10 to step 0
