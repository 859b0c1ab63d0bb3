"""The unchanged benchmark's quick mode: this checkout run twice must come out bitwise the same (a run is a
function of its config and seed), so a difference the benchmark reports between two checkouts is the change's."""

from __future__ import annotations

import json


def test_the_quick_unchanged_benchmark_finds_a_run_equal_to_itself(quick_benchmark):
    results = json.loads((quick_benchmark("unchanged") / "results.json").read_text())
    assert results["unchanged"], results
    assert results["lines"][0] == results["lines"][1] > 0 and results["numbers"] == []
    assert all(entry["tensors"] > 0 and entry["different"] == [] for entry in results["tensors"].values())
