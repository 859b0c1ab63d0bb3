"""The label-free benchmark's quick mode (benchmarks/label_free.py): real runs of MoCo v2 and SimCLR, and of
MoCo v2 with BatchNorm statistics trained, from the real base on real digits, every checkpoint scored by the
linear probe and by each label-free criterion, and each criterion's pick, regret and verdicts as its rules say
(the accuracies are the full mode's business, committed under benchmarks/results/label_free)."""

from __future__ import annotations

import json


def test_the_quick_label_free_benchmark_judges_every_criterion(quick_benchmark):
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
