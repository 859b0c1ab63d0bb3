"""RankMe and alpha-ReQ against direct numpy computations, and at their ends."""

import numpy as np
import pytest
import torch

from hpt.eval.spectrum import alpha_req, rankme


def test_rankme_matches_numpy():
    z = np.random.default_rng(0).normal(size=(64, 24)) * np.linspace(0.1, 3, 24)
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + 1e-7
    # float32 singular values against numpy's float64: ~1e-6 relative (float32's 6e-8 times the 64 x 24 sums),
    # the entropy of their shares no worse; 1e-4 leaves 100x
    assert rankme(torch.tensor(z, dtype=torch.float32)) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-4)


def test_collapsed_embeddings_score_lowest():
    torch.manual_seed(0)
    spread = rankme(torch.randn(512, 64))
    assert 55 < spread <= 64  # a flat spectrum: close to the full rank
    rank_one = torch.randn(512, 1) @ torch.randn(1, 64)
    assert rankme(rank_one) == pytest.approx(1.0, abs=0.01)
    four_dims = torch.randn(512, 4) @ torch.randn(4, 64)
    assert rankme(rank_one) < rankme(four_dims) <= 4.01 < spread


def test_alpha_req_recovers_a_power_law_and_matches_numpy():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    for alpha in (0.5, 1.0, 2.0):
        scales = np.arange(1, 65) ** (-alpha / 2)  # variance i^-alpha along orthogonal directions
        z = rng.normal(size=(20_000, 64)) * scales @ basis.T
        # 20,000 samples estimate each variance to sqrt(2 / 20,000) = 1% (seeded, so the same draw everywhere); the
        # fitted slope over 64 of them errs far less than that: 5% is the estimator's, not the sample's, margin
        assert alpha_req(torch.tensor(z, dtype=torch.float32)) == pytest.approx(alpha, rel=0.05)
    z = rng.normal(size=(300, 32)) * np.linspace(0.2, 4, 32)
    eig = np.linalg.svd(z - z.mean(0), compute_uv=False) ** 2 / 299
    slope = np.polyfit(np.log(np.arange(1, 33)), np.log(eig), 1)[0]
    # float32 against float64 eigenvalues spanning 400x (0.2^2 to 4^2): ~1e-5 relative on the smallest; 100x that
    assert alpha_req(torch.tensor(z, dtype=torch.float32)) == pytest.approx(-slope, rel=1e-3)
