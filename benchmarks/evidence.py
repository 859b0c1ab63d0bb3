"""A finding's evidence: a mean paired difference over targets and seeds with a 95% interval that carries both
errors a study has, the seeds' (training randomness) and the test images' (each target's test split is one sample
of the images the finding is about, and every seed is scored on the same one, so 9 (target, seed) pairs are not 9
independent results).

Per target, the S seeds' differences d_s (one setting minus another: same target, seed and test images) and their
mean d. A two-way layout, seeds by images: d's variance is sigma²_seed / S + sigma²_image / n + sigma²_both / (n S)
(the runs' own variation, the images', and how a run's outcome on an image departs from both). Estimated as
- the seeds' term: s² / S, s the sample standard deviation of the d_s. On a shared test split it holds
  sigma²_seed / S + sigma²_both / (n S);
- the test images' term: bootstrap resamples of the test split, one resample shared by every run of the target (so
  the pairing is kept) and the finding's statistic recomputed on it (a best over steps, a spread over policies:
  anything computed from per-image outcomes). The variance of d over the resamples, v, holds sigma²_image / n +
  sigma²_both / (n S); that of each seed's own d_s, on average w, holds sigma²_image / n + sigma²_both / n. So the
  images' own term, counted once, is v - (w - v) / (S - 1), at least 0.
Where a study kept no per-image outcomes, the unpaired binomial variance p_a (1 - p_a) / n + p_b (1 - p_b) / n at the
seeds' mean accuracies stands in for the images' term: larger than it whenever the two settings' outcomes
correlate positively, as two models scored on the same images do, and it counts the interaction again, so that
interval errs wide (marked "unpaired").
The finding is the mean over the targets, which are fixed (it is about these targets, not a population of them):
D = mean of the targets' d, Var D = sum of their variances / T². Its interval is D ± t(0.975, nu) sqrt(Var D), nu
by Welch-Satterthwaite from the seed terms' S - 1 degrees of freedom (the image terms counted as known).
tests/test_evidence.py measures its coverage and power on simulated studies.

Why not a bootstrap over the seeds as well: with 3 seeds it sees 10 distinct resamples and shrinks their variance
by (S - 1) / S; Student's t with S - 1 degrees of freedom is what three values allow.

A finding "holds" when its interval lies above 0, is "shown the other way" when it lies below, and is "not shown"
otherwise; the pairs that agree are counted beside it, never instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student

from hpt.eval.uncertainty import unpack

REPLICATES = 2000
"""Bootstrap resamples of a test split: the image term's own relative error is about sqrt(2 / 2000), 3%."""


@dataclass(frozen=True)
class Evidence:
    """One target's: its seeds' differences on the whole test split and the test images' variance of their mean."""

    differences: tuple[float, ...]
    image_variance: float
    paired: bool
    """False where the image term is the unpaired bound (the study kept no per-image outcomes)."""


def from_outcomes(
    statistic: Callable[[np.ndarray], np.ndarray], images: int, seed: int = 0, replicates: int = REPLICATES
) -> Evidence:
    """`statistic(index)`: the seeds' differences computed on the test images `index` (indices into the split,
    with repeats), from the runs' per-image outcomes; its mean's image variance by `replicates` resamples."""
    differences = np.asarray(statistic(np.arange(images)), dtype=float)
    rng = np.random.default_rng(seed)
    resampled = np.array([statistic(rng.integers(0, images, images)) for _ in range(replicates)])  # replicates x S
    of_mean = float(np.var(resampled.mean(axis=1), ddof=1))
    of_each = float(np.mean(np.var(resampled, axis=0, ddof=1)))
    seeds = len(differences)
    images_own = of_mean - (of_each - of_mean) / (seeds - 1) if seeds > 1 else of_mean
    return Evidence(tuple(differences.tolist()), max(0.0, images_own), paired=True)


def unpaired(a: Sequence[float], b: Sequence[float], images: int, offset: float = 0.0) -> Evidence:
    """The seeds' accuracies `a` against `b` (one value each, or one for all: the base as it is, a teacher) on a
    split of `images` test images kept only as accuracies: the image term is the unpaired bound. `offset` is
    added to each difference (a finding about a - b + offset, e.g. 'within 1 point of b')."""
    if len(b) == 1:
        b = list(b) * len(a)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} seeds against {len(b)}: the pairs must match seed by seed")
    differences = tuple(x - y + offset for x, y in zip(a, b, strict=True))
    return Evidence(differences, unpaired_variance(float(np.mean(a)), float(np.mean(b)), images), paired=False)


def unpaired_variance(pa: float, pb: float, images: int) -> float:
    """The variance of accuracy pa minus accuracy pb on `images` test images, as if the two were scored on
    independent splits: above the paired variance whenever their outcomes correlate positively."""
    return (pa * (1 - pa) + pb * (1 - pb)) / images


@dataclass(frozen=True)
class Finding:
    """A mean paired difference over targets and seeds, as fractions (0.035 = 3.5 points), with its interval."""

    difference: float
    low: float
    high: float
    standard_error: float
    seed_share: float
    """The share of the variance that is the seeds' (the rest is the test images')."""
    pairs: int
    wins: int
    """Pairs (target, seed) whose difference is above 0."""
    paired: bool
    """Every target's image term from per-image outcomes."""

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "holds"
        if self.high < 0:
            return "shown the other way"
        return "not shown"

    def interval(self) -> str:
        """'+3.5 points (95% CI +1.2 to +5.8)', marked 'unpaired' where the image term is the unpaired bound."""
        mark = "" if self.paired else ", unpaired"
        return f"{100 * self.difference:+.1f} points (95% CI {100 * self.low:+.1f} to {100 * self.high:+.1f}{mark})"

    def to_dict(self) -> dict:
        return {**self.__dict__, "verdict": self.verdict}


def finding(evidence: Sequence[Evidence]) -> Finding:
    """The targets' evidence combined: the module's docstring."""
    if not evidence:
        raise ValueError("a finding needs at least one target")
    if short := [e for e in evidence if len(e.differences) < 2]:
        raise ValueError(f"{len(short[0].differences)} seed on a target: the seeds' variation needs at least two")
    targets = len(evidence)
    means = [float(np.mean(e.differences)) for e in evidence]
    seed_terms = [float(np.var(e.differences, ddof=1)) / len(e.differences) / targets**2 for e in evidence]
    image_terms = [e.image_variance / targets**2 for e in evidence]
    variance = sum(seed_terms) + sum(image_terms)
    satterthwaite = sum(term**2 / (len(e.differences) - 1) for term, e in zip(seed_terms, evidence, strict=True))
    freedom = variance**2 / satterthwaite if satterthwaite > 0 else math.inf
    error = math.sqrt(variance)
    half = float(student.ppf(0.975, freedom)) * error if math.isfinite(freedom) else 1.959963984540054 * error
    difference = float(np.mean(means))
    return Finding(
        difference=difference,
        low=difference - half,
        high=difference + half,
        standard_error=error,
        seed_share=sum(seed_terms) / variance if variance > 0 else 0.0,
        pairs=sum(len(e.differences) for e in evidence),
        wins=sum(d > 0 for e in evidence for d in e.differences),
        paired=all(e.paired for e in evidence),
    )


def accuracies(outcomes: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Accuracy on the test images `index` of each row of per-image outcomes (`... x images`, booleans)."""
    return outcomes[..., index].mean(axis=-1)


def curve_outcomes(runs: Sequence[dict]) -> np.ndarray | None:
    """The seeds' per-image outcomes at every evaluation, `seeds x evaluations x images` (a study's runs of one
    setting on one target, as `study.scored_run` returns them), in the order of their curves; None when a run
    kept none (a study made before they were kept)."""
    if not all("outcomes" in run for run in runs):
        return None
    return np.stack([np.stack([_unpacked(run["outcomes"], point["step"]) for point in run["curve"]]) for run in runs])


def _unpacked(record: dict, step: int) -> np.ndarray:
    return unpack(record["steps"][str(step)], int(record["images"])).numpy()
