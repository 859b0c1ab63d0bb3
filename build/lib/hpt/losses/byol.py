"""BYOL's regression loss between the online prediction and the target projection.

Grill et al., NeurIPS 2020, "Bootstrap Your Own Latent", Eq. (2): ||p/|p| - z'/|z'|||^2 = 2 - 2 cos(p, z');
the method symmetrises it over the two views (Eq. 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 2 - 2 cos(prediction, target); `target` should carry no gradient."""
    return (2 - 2 * F.cosine_similarity(prediction, target, dim=1)).mean()
