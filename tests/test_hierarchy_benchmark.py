"""The hierarchy study's quick mode (benchmarks/hierarchy.py): a ResNet-18 hpt pretrains itself from scratch on
real digits, then base -> source -> target against base -> target and scratch on scikit-learn's 8x8 digits."""

from __future__ import annotations

import json


def test_the_quick_hierarchy_study_writes_its_results(quick_benchmark):
    out = quick_benchmark("hierarchy")
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert list(runs) == ["base", "source", "hierarchy", "target-only", "target-only, long", "scratch"]
    assert [c["step"] for c in runs["base"]["curve"]] == [0, 2]
    assert [c["step"] for c in runs["hierarchy"]["curve"]] == [0, 2]
    assert [c["step"] for c in runs["target-only, long"]["curve"]] == [0, 2, 4]
    assert [runs[name]["init"] for name in runs] == ["scratch", "full", "full", "full", "full", "scratch"]
    # each level starts from the one before: the base's export, then the source's, as the configs on disk say
    config = (out / "runs" / "hierarchy" / "config.yaml").read_text()
    assert str(out / "runs" / "source") in config and "torchvision:resnet18" in config
    assert str(out / "runs" / "base") in (out / "runs" / "target-only" / "config.yaml").read_text()
    s = results["summary"]
    assert s["base_as_is"] == {k: runs["target-only"]["curve"][0][k] for k in ("linear", "kNN")}
    assert s["source_as_is"] == {k: runs["hierarchy"]["curve"][0][k] for k in ("linear", "kNN")}
    assert set(s["hierarchy_minus"]) == {"target-only", "target-only, long", "scratch"}
    assert results["datasets"] == {"base": "mnist-5k", "source": "mnist-5k", "target": "digits-8x8"}
    assert len(list((out / "data" / "digits-8x8" / "test").rglob("*.png"))) == 50
    assert (out / "hierarchy.png").read_bytes()[:4] == b"\x89PNG"
    assert "| hierarchy |" in (out / "results.md").read_text()
