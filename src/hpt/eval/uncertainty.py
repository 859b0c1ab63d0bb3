"""How sure a score is: the standard error of an accuracy, a bootstrap one for mean AUROC, and the paired
difference of two models (or two steps) on the same test images with its 95% interval and a verdict in words.

An accuracy on n test images is a mean of n Bernoulli outcomes: its standard error is sqrt(p (1 - p) / n)
(500 images at 70%: 2.0 points). Two models scored on the *same* images are compared image by image: the
difference of their accuracies is the mean of d_i = correct_a,i - correct_b,i in {-1, 0, 1}, and its 95%
interval comes from a paired bootstrap of those d_i (Efron & Tibshirani 1993, ch. 13, percentile interval). As
d_i takes three values, a bootstrap resample is a multinomial draw of their counts, so 10,000 resamples cost
microseconds whatever n is. Only the images on which the two disagree move it, as in McNemar's test.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

RESAMPLES = 10_000
"""Paired-bootstrap resamples for a difference: the 2.5% and 97.5% quantiles move by < 0.1 point between seeds."""
AUROC_RESAMPLES = 200
"""Bootstrap resamples of the test images for mean AUROC's standard error (each one sorts every label's scores:
at 100k images x 14 labels, ~35 s on 2 cores; a standard error needs far fewer resamples than an interval)."""
SE = "_se"
"""Suffix of a score's standard error in every metrics record: `knn_top1_k20_se`."""


def standard_error(correct: torch.Tensor) -> float:
    """Binomial standard error of the accuracy of per-image outcomes `correct` (N booleans)."""
    n = correct.numel()
    return binomial_standard_error(float(correct.double().mean()), n) if n else math.nan


def binomial_standard_error(p: float, n: int) -> float:
    """sqrt(p (1 - p) / n): the standard error of an accuracy p on n images."""
    return math.sqrt(p * (1 - p) / n)


def bootstrap_standard_error(
    statistic: Callable[[torch.Tensor], float], n: int, resamples: int = AUROC_RESAMPLES, seed: int = 0
) -> float:
    """The spread of `statistic(indices)` over resamples of n test images drawn with replacement."""
    generator = torch.Generator().manual_seed(seed)
    values = [statistic(torch.randint(n, (n,), generator=generator)) for _ in range(resamples)]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan


def with_errors(metrics: dict[str, float], correct: dict[str, torch.Tensor]) -> dict[str, float]:
    """`metrics` with each accuracy's standard error beside it (`name_se`), from its per-image outcomes."""
    out = dict(metrics)
    for name, outcomes in correct.items():
        out[name + SE] = standard_error(outcomes)
    return out


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

    @property
    def verdict(self) -> str:
        """'better', 'worse' (the 95% interval excludes 0) or 'no detectable difference'."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no detectable difference"

    def words(self) -> str:
        """'better by 5.5 points (95% CI 3.1 to 7.9)', 'no detectable difference (+0.4 points, 95% CI ...)'."""
        interval = f"95% CI {100 * self.low:+.1f} to {100 * self.high:+.1f}"
        if self.verdict == "no detectable difference":
            return f"no detectable difference ({100 * self.difference:+.1f} points, {interval})"
        return f"{self.verdict} by {100 * abs(self.difference):.1f} points ({interval})"

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Difference:
        low, high = record["ci95"]
        return cls(record["difference"], low, high, record["standard_error"], record["images"], record["disagreements"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "ci95": [self.low, self.high],
            "standard_error": self.standard_error,
            "images": self.images,
            "disagreements": self.disagreements,
            "verdict": self.verdict,
        }


def paired_difference(a: torch.Tensor, b: torch.Tensor, resamples: int = RESAMPLES, seed: int = 0) -> Difference:
    """Accuracy of `a` minus accuracy of `b`, per-image outcomes on the same images in the same order, with the
    paired bootstrap's 95% percentile interval."""
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {tuple(a.shape)} vs {tuple(b.shape)}")
    d = a.flatten().long() - b.flatten().long()  # N values in {-1, 0, 1}
    n = d.numel()
    counts = np.array([int((d == -1).sum()), int((d == 0).sum()), int((d == 1).sum())])
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)  # resamples x 3
    means = (draws[:, 2] - draws[:, 0]) / n
    low, high = np.quantile(means, [0.025, 0.975])
    spread = float(d.double().std()) / math.sqrt(n) if n > 1 else math.nan
    return Difference(float(d.double().mean()), float(low), float(high), spread, n, int(counts[0] + counts[2]))


def with_error_bars(metrics: dict[str, float]) -> str:
    """'knn_top1_k20 0.7400 ± 0.0196  knn_top1_k200 ...': each score beside its standard error, where it has one."""
    shown = []
    for name, value in metrics.items():
        if name.endswith(SE):
            continue
        error = metrics.get(name + SE)
        shown.append(f"{name} {value:.4f}" + (f" ± {error:.4f}" if error is not None else ""))
    return "  ".join(shown)


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
