"""The convergence study's quick mode (benchmarks/convergence.py): it runs scratch, HPT and HPT-BN on real digits
from the real base, two seeds each, and writes its results, table and plot with the right shapes (the accuracies
are the full mode's business, committed under benchmarks/results/convergence)."""

from __future__ import annotations

import json


def test_the_quick_convergence_study_writes_its_results(quick_benchmark):
    tmp_path = quick_benchmark("convergence")
    results = json.loads((tmp_path / "results.json").read_text())
    target = results["targets"]["mnist-5k"]
    runs, summary = target["runs"], target["summary"]
    assert list(runs) == ["scratch", "HPT", "HPT-BN"] and summary["seeds"] == 2
    assert all([c["step"] for c in run["curve"]] == [0, 2, 4, 6, 8] for run in runs["scratch"])
    for name in ("HPT", "HPT-BN"):
        assert all([c["step"] for c in run["curve"]] == [0, 2] for run in runs[name])
        for label in ("linear", "kNN"):
            assert summary[name][label]["start"] == summary["base"][label]  # step 0: the base as it is
            assert len(summary[name][label]["speedup"]) == len(summary[name][label]["steps_to_scratch_best"]) == 2
            assert summary[name][label]["scratch_steps_to_its_best"] == [
                next(c["step"] for c in run["curve"] if c[label] == max(p[label] for p in run["curve"]))
                for run in runs["scratch"]
            ]
    for seeds in runs.values():
        assert all(0 <= c[score] <= 1 for run in seeds for c in run["curve"] for score in ("linear", "kNN"))
    assert (tmp_path / "convergence_mnist-5k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| HPT-BN |" in (tmp_path / "results.md").read_text()
