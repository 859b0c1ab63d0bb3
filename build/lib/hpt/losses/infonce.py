"""InfoNCE with a bank of negatives, as in MoCo.

He et al., CVPR 2020, "Momentum Contrast for Unsupervised Visual Representation Learning", Eq. (1) and
Algorithm 1: for query q, positive key k+ and negatives k_i,
    L_q = -log( exp(q.k+ / t) / (exp(q.k+ / t) + sum_i exp(q.k_i / t)) ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce_loss(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean InfoNCE over the batch.

    query, key: N x C, L2-normalised; key carries no gradient in MoCo.
    negatives:  C x K, L2-normalised (MoCo's queue layout); must not be modified in place before backward.
    """
    positive = torch.einsum("nc,nc->n", query, key).unsqueeze(-1)  # positive logits: N x 1
    negative = torch.einsum("nc,ck->nk", query, negatives)  # negative logits: N x K
    logits = torch.cat([positive, negative], dim=1) / temperature  # N x (1 + K)
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)  # the positive is column 0
    return F.cross_entropy(logits, targets)


def infonce_in_batch(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean InfoNCE with the batch's other keys as the negatives (SimCLR's and MoCo v3's): query i's positive is
    key i, every key j != i a negative. query, key: N x C, L2-normalised."""
    logits = query @ key.T / temperature  # N x N, the positives on the diagonal
    return F.cross_entropy(logits, torch.arange(query.shape[0], device=query.device))
