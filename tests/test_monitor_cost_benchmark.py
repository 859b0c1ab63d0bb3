"""The monitor-cost benchmark's quick mode: real runs with and without the monitor, each evaluation's time
logged (its shares are the committed run's to judge, never a test's)."""

from __future__ import annotations

import json


def test_the_quick_monitor_cost_benchmark_logs_every_evaluation(quick_benchmark):
    results = json.loads((quick_benchmark("monitor_cost") / "results.json").read_text())
    entry = results["now"]["4"]
    assert entry["with_monitor"]["evaluations"] == 5  # step 0, then every step (4 // 10 rounds up to 1)
    assert 0 < entry["with_monitor"]["eval_s"] < entry["with_monitor"]["wall_s"]
    assert 0 < entry["logged_share"] < 1 and "difference_share" in entry
