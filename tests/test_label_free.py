"""The label-free criteria (`hpt.eval.label_free`) on features whose answer is known by construction, and the
monitor's fixed views: the same at every evaluation, and the training's random state left as it was."""

from __future__ import annotations

import math

import pytest
import torch

from hpt.data.decode import RGB
from hpt.data.files import find_images
from hpt.data.views import pretrain_view
from hpt.eval import label_free
from hpt.eval.monitor import LabelFreeMonitor, SeededViews


def test_view_retrieval_finds_the_same_image_and_not_a_shuffled_one():
    a = torch.randn(200, 32, generator=torch.Generator().manual_seed(0))
    assert label_free.view_retrieval(a, a + 0.01 * torch.randn(200, 32)) == 1.0
    shuffled = a[torch.roll(torch.arange(200), 1)]  # every image's "other view" is its neighbour's: none right
    assert label_free.view_retrieval(a, shuffled) == 0.0


def test_alignment_is_the_squared_distance_of_the_normalised_views():
    a = torch.randn(50, 8)
    assert label_free.alignment(a, 3 * a) == pytest.approx(0.0, abs=1e-6)  # scale does not count
    assert label_free.alignment(a, -a) == pytest.approx(4.0, abs=1e-5)  # opposite unit vectors: |2u|^2


def test_uniformity_of_one_point_and_of_orthonormal_vectors():
    assert label_free.uniformity(torch.ones(10, 4)) == pytest.approx(0.0, abs=1e-6)  # log of exp(0)
    # orthonormal vectors are sqrt(2) apart: log exp(-2 x 2) = -4 for every pair
    assert label_free.uniformity(torch.eye(16)) == pytest.approx(-4.0, abs=1e-5)


def test_normalised_mutual_information_of_equal_and_of_independent_partitions():
    first = torch.tensor([0, 0, 1, 1, 2, 2])
    assert label_free.normalised_mutual_information(first, torch.tensor([5, 5, 3, 3, 0, 0])) == pytest.approx(1.0)
    rows, cols = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])  # a balanced product: independent
    assert label_free.normalised_mutual_information(rows, cols) == pytest.approx(0.0, abs=1e-12)


def test_kmeans_finds_well_separated_clusters_and_the_two_views_agree():
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(6)[:, :6] * 10
    truth = torch.arange(300) % 6
    a = centres[truth] + 0.1 * torch.randn(300, 6, generator=generator)
    b = centres[truth] + 0.1 * torch.randn(300, 6, generator=generator)
    found = label_free.kmeans(a, 6, seed=0)
    assert label_free.normalised_mutual_information(found, truth) == pytest.approx(1.0)
    # k = sqrt(300 / 2) = 12 > 6 clusters: the split of each true cluster may differ between views, so less than 1
    assert 0.5 < label_free.cluster_agreement(a, b) <= 1.0


def test_neighbour_agreement_is_one_at_the_start_and_falls_as_features_move():
    start = torch.randn(100, 16, generator=torch.Generator().manual_seed(1))
    assert label_free.neighbour_agreement(start, start) == 1.0
    # unrelated features share a neighbour by chance: about k / (N - 1) = 10 / 99
    unrelated = torch.randn(100, 16, generator=torch.Generator().manual_seed(2))
    assert label_free.neighbour_agreement(start, unrelated) < 0.3


def test_seeded_views_repeat_and_leave_the_random_state_alone(digits):
    images = find_images(str(digits["pretrain"]))
    view = pretrain_view("full", 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    first, second = SeededViews(images, view, RGB, seed=3, which=0), SeededViews(images, view, RGB, 3, 1)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = first[0][0]
    assert torch.equal(torch.get_rng_state(), state)  # training's draws are not shifted by an evaluation
    assert torch.equal(first[0][0], a)  # the same view at every evaluation
    assert not torch.equal(second[0][0], a)  # the image's other view is another draw


def test_the_monitor_compares_with_step_0_only_once_it_has_seen_it(digits):
    from hpt.backbones import create_backbone
    from hpt.data.views import eval_view

    images = find_images(str(digits["pretrain"])).subset(list(range(40)))
    stats = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    monitor = LabelFreeMonitor(images, eval_view(16, *stats), 16, RGB, pretrain_view("full", 16, *stats), seed=0)
    torch.manual_seed(0)
    backbone = create_backbone("timm:test_resnet")
    resumed = monitor(backbone, "cpu", step=6)  # a resumed run's first evaluation: no step 0 to compare with
    assert "neighbour_agreement" not in resumed
    assert set(resumed) == {"rankme", "alpha_req", "view_retrieval", "alignment", "uniformity", "cluster_agreement"}
    assert monitor(backbone, "cpu", step=0)["neighbour_agreement"] == 1.0
    assert all(math.isfinite(v) for v in monitor(backbone, "cpu", step=2).values())
