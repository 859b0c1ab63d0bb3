"""The 12-bit benchmark's quick mode: both kinds of images pretrained and scored, the 12-bit runs through an
`auto` window that covers the 12-bit range (their values are the benchmark's business, not a test's)."""

from __future__ import annotations

import json


def test_the_quick_high_bit_benchmark_produces_its_table(quick_benchmark):
    out = quick_benchmark("high_bit")
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"8-bit", "12-bit", "12-bit, full-range (hpt 0.1)"}
    assert all(len(r) == 1 for r in results["runs"].values())
    window = results["runs"]["12-bit"][0]["intensity"]
    assert window["mode"] == "fixed" and 0 <= window["low"] < window["high"] <= 4095
    assert results["runs"]["8-bit"][0]["intensity"]["mode"] == "full-range"  # 8-bit images: untouched
    assert results["runs"]["12-bit, full-range (hpt 0.1)"][0]["intensity"]["source"] == "data.intensity"
    assert "| 12-bit |" in (out / "results.md").read_text()
