"""NT-Xent, SimCLR's normalised temperature-scaled cross entropy.

Chen, Kornblith, Norouzi & Hinton, ICML 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", Eq. (1) and Algorithm 1: over 2N views, each anchor's positive is its partner view and its
2(N-1) negatives are all other views; the loss is the mean over all 2N anchors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """z1, z2: N x C projections of the two views of the same N images (normalised here)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # 2N x C
    logits = z @ z.T / temperature  # 2N x 2N cosine similarities
    logits.fill_diagonal_(float("-inf"))  # an anchor is not its own negative
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # 2N
    return F.cross_entropy(logits, partner)
