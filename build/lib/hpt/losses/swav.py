"""SwAV's Sinkhorn-Knopp codes and swapped-prediction loss.

Caron et al., NeurIPS 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments":
codes Q solve an entropy-regularised equipartition problem (Sec. 3.1, Eq. 3, solved with 3 Sinkhorn-Knopp
iterations, epsilon 0.05); the loss predicts each large crop's code from every other crop (Eq. 1-2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hpt.core.distributed import all_reduce_sum, world_size


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes for `scores` (B x K prototype scores): each row sums to 1 and, over the global batch, each
    prototype receives B_global / K of the mass. As in SwAV's code the last step normalises the rows, so
    their sums are exact and the prototype sums converge with the iterations."""
    q = torch.exp(scores.float() / epsilon).T  # K x B; scores of unit vectors lie in [-1, 1]: no overflow
    k, b = q.shape
    b_global = b * world_size()
    q /= all_reduce_sum(q.sum())
    for _ in range(iterations):
        q /= all_reduce_sum(q.sum(dim=1, keepdim=True))  # each prototype: total mass 1 ...
        q /= k  # ... then 1/K
        q /= q.sum(dim=0, keepdim=True)  # each sample: total mass 1 ...
        q /= b_global  # ... then 1/B
    return (q * b_global).T  # B x K, rows sum to 1


def swapped_prediction_loss(scores: list[torch.Tensor], codes: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """`scores[v]`: B x K prototype scores of crop v; `codes[i]`: B x K codes of large crop i (i < len(codes)).
    Each code is predicted from every other crop: mean over pairs of -sum(q_i * log softmax(scores_v / T))."""
    total, pairs = scores[0].new_zeros(()), 0
    for i, code in enumerate(codes):
        for v, score in enumerate(scores):
            if v == i:
                continue
            total = total - (code * F.log_softmax(score / temperature, dim=1)).sum(dim=1).mean()
            pairs += 1
    return total / pairs
