"""The convergence study's quick mode (benchmarks/convergence.py): it runs scratch, HPT and HPT-BN on real digits
from the real base and writes its results, table and plot with the right shapes (the accuracies are the full
mode's business, committed under benchmarks/results/convergence)."""

from __future__ import annotations

import json


def test_the_quick_convergence_study_writes_its_results(quick_benchmark):
    tmp_path = quick_benchmark("convergence")
    results = json.loads((tmp_path / "results.json").read_text())
    target = results["targets"]["mnist-5k"]
    assert list(target["runs"]) == ["scratch", "HPT", "HPT-BN"]
    assert [c["step"] for c in target["runs"]["scratch"]["curve"]] == [0, 2, 4, 6, 8]
    for name in ("HPT", "HPT-BN"):
        assert [c["step"] for c in target["runs"][name]["curve"]] == [0, 2]
        assert target["runs"][name]["curve"][0]["linear"] == target["summary"]["base"]["linear"]  # step 0: the base
        assert {"speedup_linear", "speedup_kNN", "speedup_trained_linear", "speedup_trained_kNN"} <= set(
            target["summary"][name]
        )
    for run in target["runs"].values():
        assert all(0 <= c[score] <= 1 for c in run["curve"] for score in ("linear", "kNN"))
    assert (tmp_path / "convergence_mnist-5k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| HPT-BN |" in (tmp_path / "results.md").read_text()
