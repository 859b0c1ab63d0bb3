"""The preprocessing benchmark's quick mode: both real sources measured, each image's features compared, and the
kNN decisions counted."""

from __future__ import annotations

import json


def test_the_quick_preprocessing_benchmark_compares_rounded_and_unrounded_inputs(quick_benchmark):
    results = json.loads((quick_benchmark("preprocessing") / "results.json").read_text())
    for source in ("aerial", "digits"):
        measured = results[source]
        assert measured["images"] > 0 and "intensity window" in measured["window"]
        assert 0 < measured["relative_difference_mean"] <= measured["relative_difference_max"]  # rounding is real
        assert -1 <= measured["cosine_min"] <= 1
    assert 0 <= results["digits"]["knn_changed"] <= results["digits"]["images"]
