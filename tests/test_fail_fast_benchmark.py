"""The fail-fast benchmark's quick mode times its five bad inputs, each one line and exit 2 (its timings are the
committed run's to judge, never a test's)."""

from __future__ import annotations

import json


def test_the_quick_fail_fast_benchmark_refuses_each_bad_input_in_one_line(quick_benchmark):
    results = json.loads((quick_benchmark("fail_fast") / "results.json").read_text())
    assert len(results["cases"]) == 5
    for name, entry in results["cases"].items():
        assert entry["now"]["error"].startswith("hpt: error: "), name
