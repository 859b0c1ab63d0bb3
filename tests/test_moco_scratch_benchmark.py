"""The from-scratch MoCo study's quick mode (benchmarks/moco_scratch.py): real runs from random weights on real
digits, a calibration run whose weights do not move, and its table and plot with the right shapes (the accuracies
are the full mode's business, committed under benchmarks/results/moco_scratch)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from hpt.backbones import create_backbone


def test_the_quick_scratch_study_writes_its_results(quick_benchmark):
    out = quick_benchmark("moco_scratch")
    results = json.loads((out / "results.json").read_text())
    target = results["targets"]["mnist-5k"]
    assert list(target["runs"]) == ["calibration", "hpt defaults", "without emulated shuffling BN"]
    for runs in target["runs"].values():
        assert len(runs) == 2  # the quick mode's seeds
    assert [c["step"] for c in target["runs"]["calibration"][0]["curve"]] == [0, 2]
    assert [c["step"] for c in target["runs"]["hpt defaults"][0]["curve"]] == [0, 2, 4]
    summary = target["summary"]
    for setting in ("hpt defaults", "without emulated shuffling BN"):
        for score in ("linear", "kNN"):
            assert 0 <= summary[setting][score]["last_beats_calibrated"] <= 2
            assert summary[setting][score]["last"]["sd"] >= 0
    # the same seed starts from the same random network: its step 0 is the calibration run's step 0
    for seed in range(2):
        assert target["runs"]["hpt defaults"][seed]["curve"][0] == target["runs"]["calibration"][seed]["curve"][0]
    # at a learning rate of 1e-9 the calibration run's weights stay at the seed's random start (2 steps move a
    # weight by about lr x gradient, under 1e-6 of its scale), while its BatchNorm statistics move
    torch.manual_seed(0)
    start = create_backbone("timm:tf_efficientnet_lite0").model.state_dict()
    calibrated = load_file(out / "runs" / "mnist-5k" / "calibration-0" / "backbone.safetensors")
    weights = [k for k in start if start[k].is_floating_point() and "running" not in k]
    assert weights and all(torch.allclose(calibrated[k], start[k], rtol=0, atol=1e-6) for k in weights)
    assert any(not torch.allclose(calibrated[k], start[k]) for k in start if "running_var" in k)
    assert (out / "moco_scratch_mnist-5k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| hpt defaults, last step |" in (out / "results.md").read_text()
