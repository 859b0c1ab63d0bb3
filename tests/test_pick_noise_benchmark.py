"""The pick-noise benchmark's quick mode (benchmarks/pick_noise.py): one real run on real digits from the real
base, both rules read from the outcomes it kept and compared on its test split, the tables written (the counts
are the full mode's business, committed under benchmarks/results/pick_noise)."""

from __future__ import annotations

import json


def test_the_quick_pick_noise_benchmark_compares_both_rules(quick_benchmark):
    tmp_path = quick_benchmark("pick_noise")
    results = json.loads((tmp_path / "results.json").read_text())
    (run,) = results["runs"]
    steps = [c["step"] for c in run["curve"]]
    assert steps == [0, 2, 4] and run["validation_images"] == 10 and run["test_images"] == 100
    assert set(run["picks"]) == {"before", "after"} and all(p in steps for p in run["picks"].values())
    # the rule before is the first highest validation score, read here from the curve without the benchmark's code
    assert run["picks"]["before"] == max(run["curve"], key=lambda c: c["val"])["step"]
    assert run["picks"]["after"] >= run["picks"]["before"]  # the latest of the steps tied with it, or itself
    for rule in ("before", "after"):
        for against in ("last", "base"):
            difference = run[f"{rule}_against_{against}"]
            assert difference["images"] == 100
            low, high = difference["ci95"]
            assert low <= difference["difference"] <= high and difference["verdict"] in (
                "better",
                "worse",
                "no detectable difference",
            )
    summary = results["by_labelled"]["5"]
    assert summary["runs"] == 1 and set(summary) == {"runs", "before", "after"}
    assert "| 5 | after |" in (tmp_path / "results.md").read_text()
