"""The robustness study's quick mode (benchmarks/robustness.py): HPT and scratch under each augmentation policy
and each data fraction, on real digits from the real base, with results, table and plot of the right shapes."""

from __future__ import annotations

import json


def test_the_quick_robustness_study_writes_its_results(quick_benchmark):
    out = quick_benchmark("robustness")
    results = json.loads((out / "results.json").read_text())
    for name in ("scratch", "HPT"):
        assert list(results["policies"][name]) == ["full", "no-color", "crop-only"]
        assert list(results["fractions"][name]) == ["0.01", "0.10", "0.25", "1.00"]
        assert results["fractions"][name]["1.00"] == results["policies"][name]["full"]  # one run, not two
        for runs in (results["policies"][name], results["fractions"][name]):
            assert all([c["step"] for c in run["curve"]] == [0, 2] for run in runs.values())
    assert len((out / "lists" / "0.01.txt").read_text().splitlines()) == 8  # 1% of 800
    assert set((out / "lists" / "0.01.txt").read_text().splitlines()) <= set(
        (out / "lists" / "0.10.txt").read_text().splitlines()
    )  # the smaller fractions nest in the larger
    assert results["summary"]["base"]["linear"] == results["policies"]["HPT"]["full"]["curve"][0]["linear"]
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    assert "| HPT |" in (out / "results.md").read_text()
