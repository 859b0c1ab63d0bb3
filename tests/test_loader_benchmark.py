"""The loader benchmark's quick mode: each way of making views timed on real JPEGs (ImageNet-sized and larger
photos), with and without the draft decode, at 224 and 64 px. The times themselves are the benchmark's to report."""

from __future__ import annotations

import json


def test_the_quick_loader_benchmark_times_every_way_of_making_views(quick_benchmark):
    results = json.loads((quick_benchmark("loader") / "results.json").read_text())
    ms = results["ms"]
    assert len(ms) == 2 * 4 * 2 and all(value > 0 for value in ms.values())
    assert set(results["photos"]) >= {"retina", "hubble_deep_field", "astronaut"}
