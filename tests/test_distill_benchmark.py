"""The distillation study's quick mode (benchmarks/distill.py): HPT and both losses from the real Lite0 base with the
real Lite2 teacher on real digits, both models scored as they are, and the loss picked on the validation split (the
accuracies are the full mode's business, committed under benchmarks/results/distill)."""

from __future__ import annotations

import json


def test_the_quick_distillation_study_writes_its_results(quick_benchmark):
    out = quick_benchmark("distill")
    results = json.loads((out / "results.json").read_text())
    target = results["targets"]["mnist-5k"]
    assert list(target["runs"]) == ["mocov2", "seed-16", "cosine-16"]
    base = target["runs"]["mocov2"][0]["curve"][0]
    for (run,) in target["runs"].values():
        assert [c["step"] for c in run["curve"]] == [0, 2]
        assert run["curve"][0] == base  # every run starts from the same base, scored the same way
        assert 0 <= run["validation"] <= 1
    for model in ("base", "teacher"):
        assert set(target["as_it_is"][model]["16"]) == {"linear", "kNN"}
    summary = results["summary"]
    picked = {loss: (run,) for loss in ("seed", "cosine") for run in [target["runs"][f"{loss}-16"][0]]}
    assert summary["picked"] == max(picked, key=lambda loss: picked[loss][0]["validation"])  # not by the test split
    assert "teacher as it is, 16 px" in (out / "results.md").read_text()
