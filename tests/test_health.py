"""The collapse measure against a hand computation, and at its two ends."""

import math

import numpy as np
import pytest
import torch

from hpt.train.health import CollapseWatch, all_finite, embedding_spread


def test_spread_matches_a_numpy_computation():
    z = np.random.default_rng(0).normal(size=(50, 16)) + np.linspace(0, 2, 16)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    expected = unit.std(axis=0, ddof=1).mean() * math.sqrt(16)
    assert embedding_spread(torch.tensor(z, dtype=torch.float32)) == pytest.approx(expected, rel=1e-5)


def test_spread_is_one_for_isotropic_embeddings_and_zero_for_collapsed_ones():
    torch.manual_seed(0)
    assert embedding_spread(torch.randn(20_000, 128)) == pytest.approx(1.0, abs=0.01)
    one_point = torch.randn(1, 128).expand(64, 128) * torch.rand(64, 1)  # same direction, any length
    assert embedding_spread(one_point) == pytest.approx(0.0, abs=1e-5)


def test_watch_warns_once_and_non_finite_weights_are_found():
    watch = CollapseWatch(threshold=0.5)
    watch.add(torch.randn(64, 32))
    assert watch.flush()[1] is False
    for _ in range(2):
        watch.add(torch.ones(64, 32))
    assert watch.flush() == (pytest.approx(0.0, abs=1e-6), True)
    watch.add(torch.ones(64, 32))
    assert watch.flush()[1] is False  # said once
    assert all_finite([torch.zeros(3)]) and not all_finite([torch.zeros(3), torch.tensor([1.0, math.nan])])
