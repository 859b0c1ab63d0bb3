"""Standard errors, intervals and paired comparisons (`eval/uncertainty.py`) against independent implementations
(statsmodels, not the scipy that hpt calls) and published worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from hpt.errors import HptError
from hpt.eval.uncertainty import (
    Difference,
    bootstrap_standard_error,
    images_to_resolve,
    pack,
    paired_difference,
    resolution,
    square_and_add,
    standard_error,
    unpack,
    wilson_interval,
    with_error_bars,
    with_errors,
)


def _outcomes(right: int, n: int) -> torch.Tensor:
    return torch.arange(n) < right


def _pair(both: int, gained: int, lost: int, neither: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Outcomes of a and b on both + gained + lost + neither images with that 2 x 2 table."""
    a = torch.tensor([True] * both + [True] * gained + [False] * lost + [False] * neither)
    b = torch.tensor([True] * both + [False] * gained + [True] * lost + [False] * neither)
    return a, b


def test_standard_error_is_the_binomial_one_and_the_interval_wilsons():
    assert standard_error(_outcomes(350, 500)) == pytest.approx(math.sqrt(0.7 * 0.3 / 500))  # 2.05 points
    assert standard_error(_outcomes(500, 500)) == 0.0
    assert math.isnan(standard_error(torch.zeros(0, dtype=torch.bool)))
    metrics = with_errors({"knn_top1_k20": 0.7}, {"knn_top1_k20": _outcomes(350, 500)})
    assert metrics["knn_top1_k20_se"] == pytest.approx(0.0205, abs=1e-4)
    assert with_error_bars(metrics) == "knn_top1_k20 0.7000 ± 0.0205 (95% CI 0.6584-0.7385)"
    # 40 of 40 right: a standard error of 0, and a lower bound of 91%, not 100%
    perfect = with_errors({"linear_top1": 1.0}, {"linear_top1": _outcomes(40, 40)})
    assert with_error_bars(perfect) == "linear_top1 1.0000 ± 0.0000 (95% CI 0.9124-1.0000)"


def test_wilson_interval_is_newcombes_published_one_and_statsmodels_at_every_count():
    """Newcombe (1998, Stat Med 17:857, Table II, method 3) gives Wilson's interval for four worked examples to four
    places; statsmodels computes it independently for every count of small and large n."""
    published = {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }
    for (right, n), (low, high) in published.items():
        ours = wilson_interval(right, n)
        assert ours == pytest.approx((low, high), abs=5e-5)
    for n in (1, 2, 5, 13, 40, 100, 1000):
        for right in sorted({*range(0, min(n, 40) + 1), n // 2, n - 1, n}):
            expected = proportion_confint(right, n, alpha=0.05, method="wilson")
            assert wilson_interval(right, n) == pytest.approx(expected, abs=1e-9), (right, n)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize("n", [1, 2, 10, 41, 500, 1000])
def test_the_verdict_is_exact_mcnemars_at_any_count(n):
    """Every split of 0-40 disagreements (as many as n allows): the recorded p is statsmodels' exact McNemar, the
    verdict says 'better' or 'worse' only where it is under 0.05, and the interval holds the difference."""
    for m in range(0, min(n, 40) + 1):
        for gained in range(m + 1):
            lost, both = m - gained, (n - m) // 2
            a, b = _pair(both, gained, lost, n - m - both)
            ours = paired_difference(a, b)
            expected = mcnemar([[both, gained], [lost, n - m - both]], exact=True).pvalue
            assert ours.p_value == pytest.approx(expected, abs=1e-12), (n, gained, lost)
            if ours.verdict != "no detectable difference":
                assert ours.p_value < 0.05 and (ours.verdict == "better") == (gained > lost)
            assert ours.difference == pytest.approx((gained - lost) / n) and ours.low <= ours.difference <= ours.high
            assert -1 <= ours.low and ours.high <= 1 and ours.disagreements == m and ours.images == n


def test_small_disagreement_counts_are_no_finding():
    """The issue's cases: all one way on a few images is not a difference the test images can show."""
    for gained, lost, p in [(4, 0, 0.125), (5, 0, 0.0625), (7, 1, 0.0703), (9, 2, 0.0654)]:
        ours = paired_difference(*_pair(400, gained, lost, 100 - gained - lost))
        assert ours.verdict == "no detectable difference" and ours.p_value == pytest.approx(p, abs=1e-4)
        assert ours.low < 0 < ours.high
    one = paired_difference(torch.tensor([True]), torch.tensor([False]))
    assert one.words() == (
        "no detectable difference (+100.0 points, 95% CI -95.0 to +100.0; 1 image gained, 0 lost of 1, "
        "exact McNemar p = 1.000)"
    )
    with pytest.raises(HptError, match="no test images to compare"):
        paired_difference(torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.bool))


def test_newcombes_interval_is_the_published_worked_example():
    """Cavo et al. (2012), complete response before and after consolidation therapy, as Fagerland, Lydersen & Laake
    (2014, Stat Med 33:2850, Table IV) work it: the square-and-add interval -0.1186 to -0.0046 (four places), while
    exact McNemar gives p = 0.052: the hull holds 0 and the verdict follows the exact test."""
    assert square_and_add((59, 6, 16, 80)) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    ours = paired_difference(*_pair(59, 6, 16, 80))
    assert ours.p_value == pytest.approx(0.0525, abs=1e-4) and ours.verdict == "no detectable difference"
    assert ours.low == pytest.approx(-0.1186, abs=5e-5) and ours.high > 0


def test_under_the_null_the_verdict_errs_at_most_five_percent_given_the_disagreements():
    """Two models equally good: given m disagreements, each falls a's way with probability one half. The rate of
    'better' or 'worse' verdicts, computed exactly over the m + 1 outcomes (no simulation noise), stays at or under
    5% for every m from 1 to 40 (the percentile bootstrap it replaces said 'better' at 4-0)."""
    for m in range(1, 41):
        rate = sum(
            math.comb(m, gained) / 2**m
            for gained in range(m + 1)
            if paired_difference(*_pair(300, gained, m - gained, 200 - m)).verdict != "no detectable difference"
        )
        assert rate <= 0.05, (m, rate)
    # and whole test splits drawn under the null (exchangeable outcomes, 5% + 5% disagreements on 200 images):
    # 2,000 draws estimate the rate within 0.5 point (its binomial SE at 5%), so 6.5% is three SEs over the level
    rng = np.random.default_rng(0)
    cells = rng.multinomial(200, [0.6, 0.05, 0.05, 0.3], size=2000)
    wrong = sum(paired_difference(*_pair(*map(int, c))).verdict != "no detectable difference" for c in cells)
    assert wrong / 2000 <= 0.065


def test_verdicts_in_words():
    right, wrong = _outcomes(400, 500), _outcomes(300, 500)  # 80% vs 60%, 100 disagreements all one way
    better = paired_difference(right, wrong)
    assert better.verdict == "better" and better.words().startswith("better by 20.0 points (95% CI +")
    assert better.words().endswith("100 images gained, 0 lost of 500, exact McNemar p < 0.001)")
    assert paired_difference(wrong, right).verdict == "worse"
    same = paired_difference(right, right)
    assert same.verdict == "no detectable difference" and same.low <= 0.0 <= same.high and same.p_value == 1.0
    near = paired_difference(_outcomes(251, 500), _outcomes(250, 500))  # one image apart
    assert near.words().startswith("no detectable difference (+0.2 points, 95% CI")
    assert Difference.from_dict(better.to_dict()) == better
    # a record written before 0.9 (a bootstrap interval, no counts) still reads and says its interval
    old = {k: v for k, v in better.to_dict().items() if k not in ("gained", "lost", "p_value", "method")}
    assert Difference.from_dict(old).words().startswith("better by 20.0 points (95% CI +") and "McNemar" not in (
        Difference.from_dict(old).words()
    )
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


@pytest.mark.parametrize("n", [200, 1000, 5000])
def test_the_stated_resolution_is_where_exact_mcnemar_turns(n):
    """A difference of `resolution(n)` on n images with a fifth of them disagreeing is at the edge of the exact
    test (p near 0.05: between 0.02 and 0.1, as the normal approximation and the integer counts allow), and
    `images_to_resolve` gives the test 80% power for 3 points (exact binomial power, within 0.72-0.88: the
    disagreements' own count varies, which the approximation holds fixed)."""
    from scipy.stats import binom

    m = round(0.2 * n)
    shift = round(resolution(n) * n)
    gained, lost = (m + shift) // 2, m - (m + shift) // 2
    assert 0.02 <= paired_difference(*_pair(n // 2, gained, lost, n - n // 2 - m)).p_value <= 0.1
    needed = images_to_resolve(0.03)
    m = round(0.2 * needed)
    share = (0.2 + 0.03) / (2 * 0.2)  # of the disagreements, the share the better model gains
    critical = next(k for k in range(m + 1) if 2 * binom.sf(k - 1, m, 0.5) < 0.05 and k > m / 2)
    assert 0.72 <= binom.sf(critical - 1, m, share) <= 0.88
    assert resolution(32) == pytest.approx(6 / 32)  # a small split: the exact test's floor, 6 images all one way
