"""A finding's interval over targets, seeds and test images (`benchmarks/evidence.py`): a worked example checked by
hand, and simulated studies drawn from a known population (new test images and new seeds each time) in which the
interval must cover the true difference at least as often as it says, and still find a real effect of a size the
studies report."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from evidence import Evidence, accuracies, curve_outcomes, finding, from_outcomes, unpaired  # noqa: E402

from hpt.eval.uncertainty import pack  # noqa: E402


def test_one_target_without_image_error_is_students_t_over_its_seeds():
    result = finding([Evidence((0.01, 0.02, 0.03), 0.0, paired=True)])
    half = student.ppf(0.975, 2) * 0.01 / math.sqrt(3)  # sd 0.01 over 3 seeds, 2 degrees of freedom
    assert result.difference == pytest.approx(0.02)
    assert (result.low, result.high) == pytest.approx((0.02 - half, 0.02 + half))
    assert result.seed_share == 1.0 and (result.wins, result.pairs) == (3, 3)
    assert result.verdict == "not shown"  # 4.3 x 0.0058 = 0.025 > 0.02


def test_targets_average_and_their_variances_add_over_the_targets_squared():
    a, b = Evidence((0.05, 0.06, 0.07), 0.0001, True), Evidence((0.01, 0.03, 0.02), 0.0002, False)
    result = finding([a, b])
    seed = 0.0001 / 3 / 4  # each target's seed variance (sd 0.01) over 3 seeds, over 2 targets squared
    variance = 2 * seed + (0.0001 + 0.0002) / 4
    assert result.difference == pytest.approx(0.04)
    assert result.standard_error == pytest.approx(math.sqrt(variance))
    freedom = variance**2 / (2 * seed**2 / 2)  # Welch-Satterthwaite: each seed term has 2 degrees of freedom
    assert result.high - result.difference == pytest.approx(student.ppf(0.975, freedom) * math.sqrt(variance))
    assert not result.paired and "unpaired" in result.interval()
    assert result.verdict == "holds" and result.interval().startswith("+4.0 points (95% CI +")


def test_one_seed_is_refused_in_words():
    with pytest.raises(ValueError, match="1 seed on a target"):
        finding([Evidence((0.01,), 0.0, True)])
    with pytest.raises(ValueError, match="3 seeds against 2"):
        unpaired([0.5, 0.6, 0.7], [0.5, 0.6], 100)


def test_the_unpaired_bound_is_the_two_binomial_variances():
    e = unpaired([0.8, 0.9], [0.7], 400, offset=0.01)
    assert e.differences == pytest.approx((0.11, 0.21))
    assert e.image_variance == pytest.approx((0.85 * 0.15 + 0.7 * 0.3) / 400)


def test_outcomes_read_back_from_a_studys_runs():
    rng = np.random.default_rng(0)
    correct = rng.random((2, 3, 13)) < 0.5  # 2 seeds, 3 evaluations, 13 images: bits that do not fill a byte
    runs = [
        {
            "curve": [{"step": s} for s in (0, 5, 10)],
            "outcomes": {"images": 13, "steps": {str(s): pack(torch_bool(c)) for s, c in zip((0, 5, 10), seed)}},
        }
        for seed in correct
    ]
    assert np.array_equal(curve_outcomes(runs), correct)
    assert curve_outcomes([{"curve": []}]) is None  # a study made before outcomes were kept
    assert accuracies(correct, np.arange(13)) == pytest.approx(correct.mean(axis=-1))


def torch_bool(values: np.ndarray):
    import torch

    return torch.from_numpy(values)


# A population of test images: each image's difficulty shared by every model (so two models' outcomes correlate,
# as they do), a setting's effect and each (setting, seed) run's own shift in logits. A study draws IMAGES test
# images per target and SEEDS seeds; the truth is the expected accuracy difference over images and seeds.
TARGETS, SEEDS, IMAGES = 3, 3, 500
RUN_SHIFT = 0.07  # per-run logit sd: 1-1.5 points between seeds at these accuracies, as the studies see


def study(rng: np.random.Generator, effect: float) -> list[Evidence]:
    evidence = []
    for target in range(TARGETS):
        difficulty = rng.normal(0.6 + 0.3 * target, 1.5, IMAGES)
        runs = {
            name: 1 / (1 + np.exp(-(difficulty + shift + rng.normal(0, RUN_SHIFT, (SEEDS, 1)))))
            for name, shift in (("a", effect), ("b", 0.0))
        }
        a, b = (rng.random(p.shape) < p for p in runs.values())
        evidence.append(from_outcomes(lambda i, a=a, b=b: accuracies(a, i) - accuracies(b, i), IMAGES, target, 100))
    return evidence


def true_difference(effect: float) -> float:
    """The population's difference, by numerical integration over image difficulty and run shifts."""
    grid = np.linspace(-8, 8, 4001)
    shifts = np.linspace(-5 * RUN_SHIFT, 5 * RUN_SHIFT, 201)
    weights = np.exp(-(shifts**2) / (2 * RUN_SHIFT**2))
    weights /= weights.sum()
    total = 0.0
    for target in range(TARGETS):
        density = np.exp(-((grid - 0.6 - 0.3 * target) ** 2) / (2 * 1.5**2))
        density /= density.sum()

        def accuracy(shift: float, density: np.ndarray = density) -> float:
            logits = grid[:, None] + shift + shifts[None, :]
            return float(density @ (1 / (1 + np.exp(-logits))) @ weights)

        total += accuracy(effect) - accuracy(0.0)
    return total / TARGETS


def test_simulated_studies_cover_the_truth_at_least_as_often_as_the_interval_says():
    """200 studies under no difference and 100 under a real one (+0.15 logits: 2.4 points). A valid 95% interval
    excludes the truth in at most 5% of studies: 10 of 200 expected (binomial sd 3.1), at most 20 allowed (a valid
    interval exceeds that with p < 0.003); of the 100, at most 12 misses (expected 5, sd 2.2). Power, so that an
    interval wide enough to cover everything fails: three seeds leave the seed term about 6 degrees of freedom, so
    the interval is ±2.7 points at a standard error of 1.0 and shows a 2.4-point effect in about 40% of studies
    (62 of 150 when this test was written); at least 25 of 100 required (3 sds under 40)."""
    rng = np.random.default_rng(2026)
    null = [finding(study(rng, 0.0)) for _ in range(200)]
    assert sum(f.verdict != "not shown" for f in null) <= 20
    truth = true_difference(0.15)
    assert 0.02 < truth < 0.03
    real = [finding(study(rng, 0.15)) for _ in range(100)]
    assert sum(not f.low <= truth <= f.high for f in real) <= 12
    assert sum(f.verdict == "holds" for f in real) >= 25


def test_an_interaction_counted_once():
    """Seeds that differ only image by image (no run-level shift): the seed term already holds that variation, so
    the images' own term is about 0 once the interaction is taken out, where the seed mean's bootstrap alone would
    count it again (sigma²_both / (n S) = 0.25 / 1500 for coin flips)."""
    rng = np.random.default_rng(3)
    a, b = rng.random((3, 500)) < 0.5, rng.random((3, 500)) < 0.5  # every outcome its own coin: no image effect
    e = from_outcomes(lambda i: accuracies(a, i) - accuracies(b, i), 500)
    assert e.image_variance < 0.3 * 0.5 / 1500  # the doubled count would be 0.5 / 1500 (two settings' coins)


def test_the_images_term_matches_the_two_way_anova_of_a_paired_mean():
    """For a plain accuracy difference the images' term is the two-way layout's: the variance of the per-image
    seed-mean difference over n, less the interaction's share, (mean square of the residuals) / (n S), up to
    the bootstrap's own error (2,000 resamples: relative sd about sqrt(2/1999), 3%; allowed 4 sds of the first term)."""
    rng = np.random.default_rng(7)
    hard = rng.random(500) < 0.3  # images every model tends to get wrong: an image effect
    a = rng.random((3, 500)) < np.where(hard, 0.3, 0.9)
    b = rng.random((3, 500)) < np.where(hard, 0.2, 0.85)
    e = from_outcomes(lambda i: accuracies(a, i) - accuracies(b, i), 500)
    x = a.astype(float) - b
    per_image = x.mean(axis=0)
    residual = x - x.mean(axis=1, keepdims=True) - per_image + x.mean()
    interaction = (residual**2).sum() / (2 * 499) / (500 * 3)
    expected = per_image.var() / 500 - interaction
    assert e.image_variance == pytest.approx(expected, abs=4 * math.sqrt(2 / 1999) * per_image.var() / 500)
