"""The BYOL-under-LARS diagnostic's quick mode (benchmarks/lars_byol.py): its variants really change which steps
the trust ratio scales. Accuracies are the full mode's business (benchmarks/results/lars_byol)."""

from __future__ import annotations

import json

from hpt.core.lars import TRUST_COEFFICIENT


def test_only_the_variants_plain_tensors_escape_the_trust_ratio(quick_benchmark):
    out = quick_benchmark("lars_byol")
    results = json.loads((out / "results.json").read_text())
    runs = results["targets"]["mnist-5k"]["runs"]
    assert list(runs) == ["lars", "predictor-plain"]
    # A LARS-adapted tensor's step is lr_k x its momentum buffer, each term of which is TRUST_COEFFICIENT x |w|: over
    # n steps it moves at most n x lr x TRUST_COEFFICIENT / (1 - momentum) of its norm (lr the largest, the first
    # step's; the norm changes by far less than that bound). The quick mode: 4 steps, 0.3 per 256 at batch 16.
    steps, lr = 4, 0.3 * 16 / 256
    bound = steps * lr * TRUST_COEFFICIENT / (1 - 0.9)
    adapted = {
        "lars": ["backbone weights", "projector weights", "predictor weights"],
        "predictor-plain": ["backbone weights", "projector weights"],
    }
    for variant, kinds in adapted.items():
        moved = runs[variant]["movement"]
        assert set(moved) == {"backbone weights", "backbone biases and norms", "projector weights", "predictor weights"}
        for kind in kinds:
            assert 0 < moved[kind]["largest"] <= bound, (variant, kind)
    # a plain step is lr x the gradient, which the trust ratio no longer shrinks: the new, random predictor's
    # weights move past what LARS would allow them (by ~50x in 4 steps here, so the check has room)
    assert runs["predictor-plain"]["movement"]["predictor weights"]["median"] > bound
    for run in runs.values():
        assert [c["step"] for c in run["curve"]] == [0, 4]
        assert run["spread"] and all(0 <= s["spread"] for s in run["spread"])
    assert "| predictor-plain |" in (out / "results.md").read_text()
