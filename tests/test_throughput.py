"""The throughput benchmark's quick mode: it runs all its measurements and writes its figures (their values
are the benchmark's business, not a test's)."""

from __future__ import annotations

import json


def test_the_quick_throughput_benchmark_produces_its_figures(quick_benchmark):
    out = quick_benchmark("throughput")
    figures = json.loads((out / "throughput.json").read_text())
    assert set(figures["images_per_s"]) == {"limit", "hpt", "hpt_views_on_device", "lightly"}
    assert all(value > 0 for value in figures["images_per_s"].values())
    assert all(len(windows) == 2 for windows in figures["windows"].values())
    assert figures["ratios"]["hpt/limit"] == figures["images_per_s"]["hpt"] / figures["images_per_s"]["limit"]
    assert figures["ratios"]["hpt/lightly"] == figures["images_per_s"]["hpt"] / figures["images_per_s"]["lightly"]
    assert 0 <= figures["hpt_data_wait_share"] <= 1
    assert "b/a" in (out / "throughput.md").read_text()
