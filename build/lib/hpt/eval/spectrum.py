"""Label-free scores of a representation from the singular values of its embedding matrix.

RankMe, the score hpt selects checkpoints by when there are no labels (Garrido, Assran, Ballas, Bardes, Najman & LeCun,
"RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised Representations by Their Rank",
ICML 2023, Eq. 1).

RankMe(Z) = exp(-sum_k p_k log p_k), p_k = sigma_k(Z) / ||sigma(Z)||_1 + eps, over the singular values of the
N x D matrix of embeddings Z: the effective rank, from 1 (every image on one line) to min(N, D) (a flat
spectrum). The paper shows it tracks downstream accuracy across hyper-parameters of one method without a
single label. Deviations: hpt scores the backbone's features (what it exports, and what a base that has no
projector also has) rather than the projector's output, on a fixed sample of hundreds rather than 25,600
images; scores are therefore comparable within one run and sample, not across sample sizes.

alpha-ReQ (Agrawal, Mondal, Ghosh & Richards, "alpha-ReQ: Assessing Representation Quality in Self-Supervised
Learning by Measuring Eigenspectrum Decay", NeurIPS 2022): the exponent alpha of a power law
lambda_i ~ i^-alpha fitted to the eigenvalues of the features' covariance; the paper finds the best
representations near alpha = 1 (slower decay: noise-like, faster: low-rank). Logged beside RankMe.
"""

from __future__ import annotations

import torch

EPSILON = 1e-7  # the paper's, suited to float32


def rankme(embeddings: torch.Tensor, epsilon: float = EPSILON) -> float:
    if not torch.isfinite(embeddings).all():
        return float("nan")
    singular = torch.linalg.svdvals(embeddings.float())  # min(N, D)
    p = singular / singular.sum() + epsilon
    return float(torch.exp(-(p * p.log()).sum()))


def alpha_req(embeddings: torch.Tensor) -> float:
    """The decay exponent alpha of the covariance eigenspectrum, by least squares in log-log coordinates over
    the eigenvalues above 1e-6 of the largest."""
    if not torch.isfinite(embeddings).all():
        return float("nan")
    centred = embeddings.float() - embeddings.float().mean(dim=0)
    eigenvalues = torch.linalg.svdvals(centred) ** 2 / max(1, len(centred) - 1)  # descending
    eigenvalues = eigenvalues[eigenvalues > eigenvalues[0] * 1e-6].double()
    log_rank = torch.arange(1, len(eigenvalues) + 1, dtype=torch.float64).log()
    log_rank = log_rank - log_rank.mean()
    slope = (log_rank * (eigenvalues.log() - eigenvalues.log().mean())).sum() / (log_rank * log_rank).sum()
    return float(-slope)
