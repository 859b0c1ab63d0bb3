"""The AUROC benchmark's quick mode: it refuses to write figures unless every label's AUROC equals
scikit-learn's within 1e-6 (its timings are the committed run's to judge, never a test's)."""

from __future__ import annotations

import json


def test_the_quick_auroc_benchmark_agrees_with_scikit_learn(quick_benchmark):
    results = json.loads((quick_benchmark("auroc") / "results.json").read_text())
    assert results["largest_difference"] <= 1e-6 and results["loop_difference"] <= 1e-9
    assert results["labels"] == 14
