"""The scale benchmark's quick mode: a real run to its first step, cold, warm and resumed, its memory per file,
and a DICOM folder screened, all recorded."""

from __future__ import annotations

import json


def test_the_quick_scale_benchmark_times_the_first_step_and_the_memory(quick_benchmark):
    results = json.loads((quick_benchmark("scale") / "results.json").read_text())
    ((count, run),) = results["runs"].items()
    assert int(count) > 0 and run["resume"] > 0
    for start in ("cold", "warm"):
        assert 0 < run[start]["to_step_1_s"] <= run[start]["total_s"] and run[start]["rss_mb"] > 0
    assert all(r["cold_s"] > 0 for r in results["dicom"].values()) and results["baseline"]["rss_mb"] > 0
