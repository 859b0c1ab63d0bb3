"""The DINO study's quick mode (benchmarks/dino.py): MoCo v2 and DINO from the real Lite0 base on real digits, DINO's
last layer frozen for one pass over the unlabelled images, and the paired difference computed from the runs (the
accuracies are the full mode's business, committed under benchmarks/results/dino)."""

from __future__ import annotations

import json

import pytest
import yaml


def test_the_quick_dino_study_writes_its_results(quick_benchmark):
    out = quick_benchmark("dino")
    results = json.loads((out / "results.json").read_text())
    runs = results["targets"]["mnist-5k"]["runs"]
    assert list(runs) == ["mocov2", "dino"]
    (moco,), (dino,) = runs["mocov2"], runs["dino"]
    assert [c["step"] for c in dino["curve"]] == [0, 2] and dino["curve"][0] == moco["curve"][0]  # the same base
    written = yaml.safe_load((out / "runs" / "mnist-5k" / "dino-0" / "config.yaml").read_text())
    assert written["method"] == "dino" and written["dino"]["freeze_last_layer_steps"] == 4  # 64 images / batch 16
    for label in ("linear", "kNN"):
        paired = results["summary"]["dino_minus_mocov2"][label]
        assert paired["mean"] == pytest.approx(dino["curve"][-1][label] - moco["curve"][-1][label])
        assert paired["pairs"] == 1 and paired["wins"] == int(paired["mean"] > 0)
    assert results["summary"]["settings"]["dino"]["seconds_per_step"] > 0
    assert "DINO minus MoCo v2" in (out / "results.md").read_text()
