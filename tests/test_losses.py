import math

import pytest
import torch
import torch.nn.functional as F

from hpt.losses import infonce_loss


def naive_infonce(query, key, negatives, temperature):
    """Eq. (1) of MoCo, one sample at a time."""
    total = 0.0
    for q, k in zip(query, key):
        positive = math.exp(float(q @ k) / temperature)
        negative = sum(math.exp(float(q @ negatives[:, j]) / temperature) for j in range(negatives.shape[1]))
        total += -math.log(positive / (positive + negative))
    return total / len(query)


@pytest.mark.parametrize("n,c,k,temperature", [(4, 8, 16, 0.2), (7, 3, 5, 0.07), (1, 16, 64, 1.0)])
def test_infonce_matches_per_sample_loop(n, c, k, temperature):
    torch.manual_seed(n * 100 + k)
    query = F.normalize(torch.randn(n, c, dtype=torch.float64), dim=1)
    key = F.normalize(torch.randn(n, c, dtype=torch.float64), dim=1)
    negatives = F.normalize(torch.randn(c, k, dtype=torch.float64), dim=0)
    loss = infonce_loss(query, key, negatives, temperature)
    assert loss.item() == pytest.approx(naive_infonce(query, key, negatives, temperature), rel=1e-10)


def test_infonce_rewards_the_positive():
    torch.manual_seed(0)
    negatives = F.normalize(torch.randn(8, 32), dim=0)
    query = F.normalize(torch.randn(4, 8), dim=1)
    assert infonce_loss(query, query, negatives, 0.2) < infonce_loss(query, -query, negatives, 0.2)
