"""The double-pretraining strategies study's quick mode (benchmarks/strategies.py): SimCLR from the real base with
weight scaling, filter selection, both, and three batch sizes at the same number of images seen."""

from __future__ import annotations

import json


def test_the_quick_strategies_study_writes_its_results(quick_benchmark):
    out = quick_benchmark("strategies")
    results = json.loads((out / "results.json").read_text())
    runs = results["targets"]["mnist-5k"]["runs"]
    assert list(runs) == ["full", "weight scaling 1", "filter selection 0.25", "both", "batch 4", "batch 32"]
    assert {name: (run["batch"], run["steps"]) for name, run in runs.items()} == {
        "full": (8, 4),
        "weight scaling 1": (8, 4),
        "filter selection 0.25": (8, 4),
        "both": (8, 4),
        "batch 4": (4, 8),
        "batch 32": (32, 1),
    }
    assert [c["step"] for c in runs["full"]["curve"]] == [0, 4]
    assert [c["step"] for c in runs["batch 4"]["curve"]] == [0, 8]
    summary = results["targets"]["mnist-5k"]["summary"]
    assert all(summary[name]["images_seen"] == 32 for name in runs)
    assert summary["full"]["last_minus_full_linear"] == 0.0
    # the strategies really ran: weight scaling keeps the function (same step-0 scores), filter selection changes it
    assert runs["weight scaling 1"]["curve"][0] == runs["full"]["curve"][0]
    config = (out / "runs" / "mnist-5k" / "filter-selection-0.25" / "config.yaml").read_text()
    assert "filter_selection: 0.25" in config and "method: simclr" in config
    assert (out / "strategies.png").read_bytes()[:4] == b"\x89PNG"
    assert "| both |" in (out / "results.md").read_text()
