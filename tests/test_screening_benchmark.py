"""The screening benchmark's quick mode runs its three passes and writes its figures (their values are the
benchmark's business, not a test's)."""

from __future__ import annotations

import json


def test_the_quick_screening_benchmark_produces_its_figures(quick_benchmark):
    out = quick_benchmark("screening")
    figures = json.loads((out / "results.json").read_text())
    assert figures["images"] == 200 and set(figures["seconds"]) == {"cold", "warm", "one_added"}
    assert all(value > 0 for value in figures["images_per_s"].values())
    assert "after adding one file" in (out / "results.md").read_text()
