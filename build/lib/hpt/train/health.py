"""Is training healthy? Non-finite numbers stop a run; a collapsing representation is logged and warned about.

Collapse is watched as in SimSiam (Chen & He, CVPR 2021, Sec. 4.1 and Fig. 2): the standard deviation, over
the batch, of the l2-normalised embeddings, averaged over their D dimensions. Embeddings spread evenly over
the sphere give about 1/sqrt(D); a representation collapsed to one point gives 0. hpt reports it times
sqrt(D), so that 1 is healthy and 0 is collapsed whatever the embedding size. It sees complete collapse
(every image mapped to one direction), not dimensional collapse (embeddings spread along a few directions
only), which it can even score above 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F


def spread_tensor(embeddings: torch.Tensor) -> torch.Tensor:
    """sqrt(D) x mean_d std_n(z_nd / |z_n|) for N x D embeddings: about 1 spread out, 0 collapsed; a 0-d tensor
    on the embeddings' device (computing it waits for nothing)."""
    normalised = F.normalize(embeddings.detach().float(), dim=1)  # N x D
    return normalised.std(dim=0).mean() * math.sqrt(normalised.shape[1])


def embedding_spread(embeddings: torch.Tensor) -> float:
    """`spread_tensor` as a number (a host synchronisation)."""
    return float(spread_tensor(embeddings))


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """One device synchronisation for all of them, not one each."""
    checks = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(checks).all()) if checks else True


class CollapseWatch:
    """Averages the spread over a logging window; says once when it falls under `threshold`."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.window: list[torch.Tensor] = []
        self.warned = False

    def add(self, embeddings: torch.Tensor) -> None:
        self.window.append(spread_tensor(embeddings))  # kept on the device: no host synchronisation per step

    def flush(self) -> tuple[float, bool]:
        """The window's mean spread, and whether this is the first time it fell under the threshold (one host
        synchronisation per logging window)."""
        spread = float(torch.stack(self.window).double().mean())
        self.window = []
        first_fall = spread < self.threshold and not self.warned
        self.warned = self.warned or first_fall
        return spread, first_fall
