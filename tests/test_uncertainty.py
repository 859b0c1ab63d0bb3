"""Standard errors and paired comparisons (`eval/uncertainty.py`) against their textbook definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hpt.eval.uncertainty import (
    Difference,
    bootstrap_standard_error,
    pack,
    paired_difference,
    standard_error,
    unpack,
    with_error_bars,
    with_errors,
)


def _outcomes(right: int, n: int) -> torch.Tensor:
    return torch.arange(n) < right


def test_standard_error_is_the_binomial_one():
    assert standard_error(_outcomes(350, 500)) == pytest.approx(math.sqrt(0.7 * 0.3 / 500))  # 2.05 points
    assert standard_error(_outcomes(500, 500)) == 0.0
    assert math.isnan(standard_error(torch.zeros(0, dtype=torch.bool)))
    metrics = with_errors({"knn_top1_k20": 0.7}, {"knn_top1_k20": _outcomes(350, 500)})
    assert metrics["knn_top1_k20_se"] == pytest.approx(0.0205, abs=1e-4)
    assert with_error_bars(metrics) == "knn_top1_k20 0.7000 ± 0.0205"


def test_the_paired_bootstrap_agrees_with_resampling_images_and_with_the_normal_interval():
    """The multinomial shortcut is the bootstrap of images itself: its interval matches one drawn by resampling
    image indices (5,000 resamples; both quantiles move by ~0.2 point between seeds at n = 600, so 0.6 point
    is three times that), and, with many disagreements, the normal interval diff ± 1.96 SE (within 0.6 point)."""
    generator = torch.Generator().manual_seed(0)
    n = 600
    a = torch.rand(n, generator=generator) < 0.75
    b = torch.where(torch.rand(n, generator=generator) < 0.3, ~a, a)  # 30% disagreements
    ours = paired_difference(a, b)
    d = (a.long() - b.long()).double()
    rng = np.random.default_rng(1)
    means = [float(d[torch.from_numpy(rng.integers(0, n, n))].mean()) for _ in range(5000)]
    low, high = np.quantile(means, [0.025, 0.975])
    assert abs(ours.low - low) <= 0.006 and abs(ours.high - high) <= 0.006
    normal = 1.959964 * float(d.std()) / math.sqrt(n)
    assert abs(ours.low - (ours.difference - normal)) <= 0.006
    assert abs(ours.high - (ours.difference + normal)) <= 0.006
    assert ours.disagreements == int((a != b).sum()) and ours.images == n
    assert ours.difference == pytest.approx(float(a.double().mean() - b.double().mean()))


def test_verdicts_in_words():
    right, wrong = _outcomes(400, 500), _outcomes(300, 500)  # 80% vs 60%, 100 disagreements all one way
    better = paired_difference(right, wrong)
    assert better.verdict == "better" and better.words().startswith("better by 20.0 points (95% CI +")
    assert paired_difference(wrong, right).verdict == "worse"
    same = paired_difference(right, right)
    assert same.verdict == "no detectable difference" and (same.low, same.high) == (0.0, 0.0)
    near = paired_difference(_outcomes(251, 500), _outcomes(250, 500))  # one image apart
    assert near.words().startswith("no detectable difference (+0.2 points, 95% CI")
    assert Difference.from_dict(better.to_dict()) == better
    with pytest.raises(ValueError):
        paired_difference(right, right[:10])


def test_bootstrap_standard_error_of_a_mean_is_the_textbook_one():
    """The bootstrap SE of a mean of 0/1 outcomes is the binomial SE (within 10%: 200 resamples estimate a
    standard deviation to about 1/sqrt(2 x 200) = 5% relative)."""
    outcomes = _outcomes(300, 1000).double()
    spread = bootstrap_standard_error(lambda i: float(outcomes[i].mean()), len(outcomes))
    assert spread == pytest.approx(math.sqrt(0.3 * 0.7 / 1000), rel=0.1)


@pytest.mark.parametrize("n", [1, 7, 8, 13, 1000])
def test_outcomes_pack_and_unpack(n):
    outcomes = torch.rand(n, generator=torch.Generator().manual_seed(n)) < 0.5
    assert torch.equal(unpack(pack(outcomes), n), outcomes)
    with pytest.raises(ValueError):
        unpack(pack(outcomes), n + 8)
