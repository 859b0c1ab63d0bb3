"""How sure a score is: an accuracy's standard error and 95% interval, a bootstrap standard error for mean AUROC,
and the paired difference of two models (or two steps) on the same test images with its 95% interval, its exact
test and a verdict in words.

An accuracy on n test images is a mean of n Bernoulli outcomes: its standard error is sqrt(p (1 - p) / n)
(500 images at 70%: 2.0 points), and its 95% interval is Wilson's score interval (Wilson 1927), which stays
inside [0, 1] and keeps close to 95% coverage at any n and near 0 or 1 (Brown, Cai & DasGupta 2001 recommend it
for small n; Clopper-Pearson's covers more than 95%, often 97-99%). 40 of 40 right is 100% ± 0 with an interval
of 91.2% to 100%: the standard error alone says nothing there.

Two models scored on the *same* images are compared image by image. Only the images on which they disagree move
the difference: b that `a` gets right and `b` wrong, c the other way, D = (b - c) / n. The verdict is McNemar's
test in its exact form (the binomial test of b among the b + c disagreements, two-sided, Mosteller 1952), which
holds its 5% level conditional on any number of disagreements: 4 of 4 one way is p = 0.125, not a finding. The
95% interval is the hull of two:
- the exact conditional one, Clopper-Pearson's interval for b / (b + c) mapped onto D = (b + c)/n (2 pi - 1): it
  excludes 0 exactly when the exact test says p < 0.05, so an interval never contradicts its verdict;
- Newcombe's square-and-add interval from the two accuracies' Wilson intervals and their correlation (Newcombe
  1998, Stat Med 17:2635, as Fagerland, Lydersen & Laake 2014 give it), which also carries the uncertainty in how
  many images disagree, which the conditional one takes as fixed.
The verdict is 'better' or 'worse' only when the hull excludes 0: both agree. The bootstrap stays where no exact
method exists (mean AUROC's standard error).
"""

from __future__ import annotations

import base64
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hpt.errors import HptError

Z95 = 1.959963984540054
"""The standard normal's 97.5% quantile."""
AUROC_RESAMPLES = 200
"""Bootstrap resamples of the test images for mean AUROC's standard error (each one sorts every label's scores:
at 100k images x 14 labels, ~35 s on 2 cores; a standard error needs far fewer resamples than an interval)."""
SE = "_se"
"""Suffix of a score's standard error in every metrics record: `knn_top1_k20_se`."""
LOW, HIGH = "_ci95_low", "_ci95_high"
"""Suffixes of an accuracy's 95% interval (Wilson) in every metrics record: `knn_top1_k20_ci95_low`."""
DISAGREEING = 0.2
"""The share of images on which two steps of a run change answer, assumed where it is not yet measured (what the
validation split can resolve is said before the first evaluation). Measured on the 500 test images of two
100-step MoCo v2 runs from the Lite0 (MNIST-5k, Fashion-MNIST, 32 px, kNN every 25 steps): 22-29% between step 0
and a later step, 5-22% between consecutive evaluations."""
PAIRED_METHOD = "exact McNemar; 95% CI the hull of exact conditional and Newcombe square-and-add"
"""How a paired difference's verdict and interval are made, as each record names it."""


def is_score(name: str) -> bool:
    """Whether a metrics record's key is a score, not the error or the interval of one."""
    return not name.endswith((SE, LOW, HIGH))


def standard_error(correct: torch.Tensor) -> float:
    """Binomial standard error of the accuracy of per-image outcomes `correct` (N booleans)."""
    n = correct.numel()
    return binomial_standard_error(float(correct.double().mean()), n) if n else math.nan


def binomial_standard_error(p: float, n: int) -> float:
    """sqrt(p (1 - p) / n): the standard error of an accuracy p on n images."""
    return math.sqrt(p * (1 - p) / n)


def wilson_interval(right: int, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval for `right` of `n` (NaNs for n = 0)."""
    if n == 0:
        return math.nan, math.nan
    p, z2 = right / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def resolution(images: int, disagreeing: float = DISAGREEING) -> float:
    """The smallest difference (a fraction) that two models' scores on `images` shared images can show at the 5%
    level, when a share `disagreeing` of the images change answer between them: about 1.96 sqrt(d / n) (the
    paired difference's standard error is sqrt(d / n) near 0), and never under 6 images (exact McNemar needs 6
    disagreements all one way: 2 / 2^6 < 0.05)."""
    return max(6 / images, Z95 * math.sqrt(disagreeing / images)) if images else math.inf


def images_to_resolve(difference: float, disagreeing: float = DISAGREEING, power: float = 0.8) -> int:
    """Shared images on which a true `difference` between two models is found at the 5% level with probability
    `power` (normal approximation to the paired test: n = (z_0.975 + z_power)^2 d / difference^2)."""
    z_power = statistics.NormalDist().inv_cdf(power)
    return math.ceil((Z95 + z_power) ** 2 * disagreeing / difference**2)


def bootstrap_standard_error(
    statistic: Callable[[torch.Tensor], float], n: int, resamples: int = AUROC_RESAMPLES, seed: int = 0
) -> float:
    """The spread of `statistic(indices)` over resamples of n test images drawn with replacement."""
    generator = torch.Generator().manual_seed(seed)
    values = [statistic(torch.randint(n, (n,), generator=generator)) for _ in range(resamples)]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan


def with_errors(metrics: dict[str, float], correct: dict[str, torch.Tensor]) -> dict[str, float]:
    """`metrics` with each accuracy's standard error (`name_se`) and 95% interval (`name_ci95_low`, `_high`)
    beside it, from its per-image outcomes."""
    out = dict(metrics)
    for name, outcomes in correct.items():
        out[name + SE] = standard_error(outcomes)
        out[name + LOW], out[name + HIGH] = wilson_interval(int(outcomes.sum()), outcomes.numel())
    return out


def score_text(metrics: dict[str, Any], name: str, percent: bool = False) -> str:
    """'0.7400 ± 0.0196 (95% CI 0.6987-0.7776)', or in points with `percent`: '74.0% ± 2.0 (95% CI 69.9-77.8)';
    only what the record holds (older records have no interval, AUROC has a standard error only)."""
    value, error = metrics.get(name), metrics.get(name + SE)
    low, high = metrics.get(name + LOW), metrics.get(name + HIGH)
    if value is None:
        return "-"

    def number(x: float) -> str:
        return f"{100 * x:.1f}" if percent else f"{x:.4f}"

    text = number(value) + ("%" if percent else "") + (f" ± {number(error)}" if error is not None else "")
    return text + (f" (95% CI {number(low)}-{number(high)})" if low is not None and high is not None else "")


@dataclass(frozen=True)
class Difference:
    """Accuracy of a minus accuracy of b on the same n images, as fractions (0.055 = 5.5 points)."""

    difference: float
    low: float
    high: float
    standard_error: float
    images: int
    disagreements: int
    """Images one gets right and the other wrong: the only ones that move the difference."""
    gained: int | None = None
    """Images a gets right and b wrong (None in records of 0.7 and before, whose interval was a paired bootstrap)."""
    lost: int | None = None
    """Images a gets wrong and b right."""
    p_value: float | None = None
    """Exact McNemar's two-sided p (the binomial test of `gained` among the disagreements at one half)."""

    @property
    def verdict(self) -> str:
        """'better', 'worse' (the 95% interval excludes 0) or 'no detectable difference'."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no detectable difference"

    def words(self) -> str:
        """'better by 5.5 points (95% CI +3.1 to +7.9; 61 images gained, 16 lost, exact McNemar p < 0.001)',
        'no detectable difference (+0.8 points, 95% CI ...)'."""
        interval = f"95% CI {100 * self.low:+.1f} to {100 * self.high:+.1f}"
        if self.gained is not None and self.lost is not None and self.p_value is not None:
            p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
            interval += f"; {_images(self.gained)} gained, {self.lost} lost of {self.images}, exact McNemar {p}"
        if self.verdict == "no detectable difference":
            return f"no detectable difference ({100 * self.difference:+.1f} points, {interval})"
        return f"{self.verdict} by {100 * abs(self.difference):.1f} points ({interval})"

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Difference:
        low, high = record["ci95"]
        return cls(
            record["difference"],
            low,
            high,
            record["standard_error"],
            record["images"],
            record["disagreements"],
            record.get("gained"),
            record.get("lost"),
            record.get("p_value"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "ci95": [self.low, self.high],
            "standard_error": self.standard_error,
            "images": self.images,
            "disagreements": self.disagreements,
            "gained": self.gained,
            "lost": self.lost,
            "p_value": self.p_value,
            "method": PAIRED_METHOD,
            "verdict": self.verdict,
        }


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> Difference:
    """Accuracy of `a` minus accuracy of `b`, per-image outcomes on the same images in the same order: the exact
    McNemar test and the 95% interval of the module's docstring."""
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = a.flatten().bool(), b.flatten().bool()
    n = a.numel()
    if n == 0:
        raise HptError("no test images to compare the two on: a paired difference needs at least one image")
    both, gained, lost = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    table = (both, gained, lost, n - both - gained - lost)
    conditional, p_value = exact_conditional(gained, lost, n)
    newcombe = square_and_add(table)
    d = a.double() - b.double()
    spread = float(d.std()) / math.sqrt(n) if n > 1 else math.nan
    low, high = min(conditional[0], newcombe[0]), max(conditional[1], newcombe[1])
    return Difference(float(d.mean()), low, high, spread, n, gained + lost, gained, lost, p_value)


def exact_conditional(gained: int, lost: int, n: int) -> tuple[tuple[float, float], float]:
    """Exact McNemar: the two-sided binomial p of `gained` among `gained + lost` at one half, and the difference's
    95% interval given that many disagreements (Clopper-Pearson for gained / (gained + lost), mapped to points)."""
    from scipy.stats import binomtest  # imported on use: a second of import for the commands that never compare

    m = gained + lost
    if m == 0:
        return (0.0, 0.0), 1.0
    test = binomtest(gained, m, 0.5)
    share = test.proportion_ci(0.95, method="exact")
    return (m / n * (2 * share.low - 1), m / n * (2 * share.high - 1)), float(test.pvalue)


def square_and_add(table: tuple[int, int, int, int]) -> tuple[float, float]:
    """Newcombe's square-and-add 95% interval for a paired difference of proportions, from the 2 x 2 table
    (both right, only a right, only b right, both wrong): the two accuracies' Wilson intervals combined with
    their estimated correlation (Newcombe 1998, method 10, as Fagerland, Lydersen & Laake 2014, eq. 8, give it)."""
    n11, n12, n21, n22 = table
    n = sum(table)
    p1, p2 = (n11 + n12) / n, (n11 + n21) / n
    l1, u1 = wilson_interval(n11 + n12, n)
    l2, u2 = wilson_interval(n11 + n21, n)
    margins = (n11 + n12) * (n21 + n22) * (n11 + n21) * (n12 + n22)
    cross = n11 * n22 - n12 * n21
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:  # a positive association is shrunk by n/2 (a continuity correction), a negative one is not
        phi = (cross - n / 2 if cross > n / 2 else cross) / math.sqrt(margins)
    low = (p1 - p2) - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    high = (p1 - p2) + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    return low, high


def with_error_bars(metrics: dict[str, float]) -> str:
    """'knn_top1_k20 0.7400 ± 0.0196 (95% CI 0.6987-0.7776)  knn_top1_k200 ...': each score beside its standard
    error and interval, where it has them."""
    return "  ".join(f"{name} {score_text(metrics, name)}" for name in metrics if is_score(name))


def pack(correct: torch.Tensor) -> str:
    """Per-image outcomes as text (one bit each, base64): what a JSON file keeps for later paired comparisons."""
    bits = np.packbits(correct.flatten().bool().numpy())
    return base64.b64encode(bits.tobytes()).decode("ascii")


def unpack(text: str, images: int) -> torch.Tensor:
    """`pack`'s inverse: `images` booleans."""
    bits = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    if len(bits) != (images + 7) // 8:
        raise ValueError(f"{len(bits)} bytes of outcomes for {images} images")
    return torch.from_numpy(np.unpackbits(bits)[:images].astype(bool))
