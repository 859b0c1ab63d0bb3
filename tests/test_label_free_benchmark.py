"""The label-free benchmark's quick mode (benchmarks/label_free.py): real runs of MoCo v2 and SimCLR, and of
MoCo v2 with BatchNorm statistics trained, from the real base on real digits, every checkpoint scored by the
linear probe and by each label-free criterion, and each criterion's pick, regret and verdicts as its rules say
(the accuracies are the full mode's business, committed under benchmarks/results/label_free)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from scipy.stats import binomtest

from hpt.eval.uncertainty import unpack

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_the_quick_label_free_benchmark_judges_every_criterion(quick_benchmark, tmp_path_factory):
    out = quick_benchmark("label_free")
    results = json.loads((out / "results.json").read_text())
    runs = results["targets"]["mnist-5k"]["runs"]
    assert [(r["method"], r["recipe"], r["seed"]) for r in runs] == [
        ("mocov2", "hpt", 0),
        ("simclr", "hpt", 0),
        ("mocov2", "bn-train", 0),
    ]
    criteria = ["rankme", "alpha_req", "view_retrieval", "alignment", "uniformity", "cluster_agreement"]
    for run in runs:
        assert [e["step"] for e in run["evaluations"]] == [0, 2, 4]
        assert all(name in e for e in run["evaluations"] for name in [*criteria, "linear_top1"])
        assert run["evaluations"][0]["neighbour_agreement"] == 1.0  # step 0 against itself
    judged = results["targets"]["mnist-5k"]["criteria"]
    for name, criterion in judged.items():
        for run, verdict in zip(runs, criterion["runs"], strict=True):
            truth = {e["step"]: e["linear_top1"] for e in run["evaluations"]}
            assert abs(verdict["regret"] - (max(truth.values()) - truth[verdict["pick"]])) < 1e-12, name
    assert all(r["pick"] == 0 for r in judged["step 0"]["runs"])
    assert all(r["pick"] == 4 for r in judged["last step"]["runs"])
    assert results["overall"]["last step"]["within_goal"] <= results["runs"] == 3
    assert results["targets"]["mnist-5k"]["test_images"] == 50  # 5 a class, 10 classes
    assert (out / "label_free.png").read_bytes()[:4] == b"\x89PNG"
    assert "| view_retrieval |" in (out / "results.md").read_text()
    # each run's truth: its last step against step 0 on the test images, by the exact McNemar test computed here
    # from the kept outcomes with scipy (the benchmark goes through hpt's paired comparison)
    for run in runs:
        steps, images = run["outcomes"]["steps"], run["outcomes"]["images"]
        last, first = (unpack(steps[key], images) for key in ("4", "0"))
        gained, lost = int((last & ~first).sum()), int((~last & first).sum())
        p = binomtest(gained, gained + lost, 0.5).pvalue if gained + lost else 1.0
        assert run["truth"] == ("no detectable difference" if p >= 0.05 else "better" if gained > lost else "worse")
    # "last step" always answers "better": right on a clear run exactly when the truth is better, as is the constant
    truths = [r["truth"] for r in runs]
    clear = sum(t != "no detectable difference" for t in truths)
    last_step = results["overall"]["last step"]
    assert last_step["clear_runs"] == clear
    assert last_step["last_verdicts_right_clear"] == last_step["always_better_right_clear"] == truths.count("better")
    assert results["truths"]["better"] == truths.count("better")
    judged_again_without_outcomes(out, tmp_path_factory.mktemp("rescore") / "old")


def judged_again_without_outcomes(study: Path, out: Path) -> None:
    """`--rescore` reads a finished study's results.json (here the quick one with its outcomes taken out, as in a
    study made before they were kept) and judges each run's truth by the unpaired bound, nothing run."""
    shutil.copytree(study, out)
    results = json.loads((out / "results.json").read_text())
    for run in results["targets"]["mnist-5k"]["runs"]:
        del run["outcomes"], run["truth"]
        e = run["evaluations"]
        e[0]["linear_top1"], e[-1]["linear_top1"] = 0.5, 0.9  # 50 images: 40 points apart, clear even unpaired
    results["targets"]["mnist-5k"]["runs"][0]["evaluations"][-1]["linear_top1"] = 0.6  # 10 points: not clear
    (out / "results.json").write_text(json.dumps(results))
    subprocess.run([sys.executable, str(BENCHMARKS / "label_free.py"), "--rescore", "--out", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    rescored = json.loads((out / "results.json").read_text())
    assert [r["truth"] for r in rescored["targets"]["mnist-5k"]["runs"]] == [
        "no detectable difference", "better", "better"]  # fmt: skip
    assert rescored["command"] == results["command"] and "git" in rescored["rescored"]
    assert "by the unpaired bound" in (out / "results.md").read_text()
