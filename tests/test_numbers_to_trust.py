"""Issue 30, numbers a user can trust: the monitor picks on validation images and reports on test images that
picked nothing, in the run's own preprocessing, from views decoded once. On real digits and the real ImageNet
EfficientNet-Lite0."""

from __future__ import annotations

import pytest
import torch

from hpt.checkpoints.sources import load_backbone
from hpt.config import MonitorConfig
from hpt.data.stats import PixelStats
from hpt.errors import HptError
from hpt.eval.features import extract_features
from hpt.eval.labelled import read_labelled, targets_of
from hpt.eval.monitor import VALIDATION_FRACTION, LabelledMonitor
from hpt.eval.protocols import Split, knn_scores, split_validation

SIZE = 32


@pytest.fixture(scope="module")
def base(lite0_file):
    return load_backbone(str(lite0_file), "timm:tf_efficientnet_lite0", role="base")[0]


def _features(backbone, folder, stats: PixelStats) -> Split:
    data = read_labelled(str(folder), {}).in_view(SIZE, stats=stats)
    features, _ = extract_features(backbone, data.dataset("train"), 64)
    return Split(features, targets_of(data.images.train))


def test_the_monitor_picks_on_a_held_out_fifth_of_train_and_reports_on_test(digits, base):
    """Recomputed here from the pieces: the test score is kNN fitted on all of monitor.train; the score that
    picks is kNN fitted on monitor.train without its seeded fifth, scored on that fifth; the test images pick
    nothing. Pixels normalised with the run's statistics (given), not the labelled split's own."""
    stats = PixelStats((0.2, 0.3, 0.4), (0.25, 0.3, 0.35))  # a run's recorded mean/std, unlike the digits' own
    config = MonitorConfig(train=str(digits["train"]), test=str(digits["test"]))
    monitor = LabelledMonitor(config, SIZE, 64, stats=stats)
    scores = monitor(base, "cpu", step=0)
    train, test = _features(base, digits["train"], stats), _features(base, digits["test"], stats)
    assert scores["knn_top1_k20"] == knn_scores(train, test).metrics["knn_top1_k20"]
    fit, val = split_validation(train, VALIDATION_FRACTION)
    assert scores["knn_val_top1_k20"] == knn_scores(fit, val).metrics["knn_top1_k20"]
    assert len(val.targets) == round(VALIDATION_FRACTION * len(train.targets))  # 20 per class: 4 each held out
    n = len(test.targets)
    p = scores["knn_top1_k20"]
    assert scores["knn_top1_k20_se"] == pytest.approx((p * (1 - p) / n) ** 0.5)
    assert monitor.selects_by == "knn_val_top1_k20" and monitor.reports == "knn_top1_k20"
    assert monitor.outcomes[0].float().mean().item() == pytest.approx(p)  # kept for the paired comparisons
    assert "held-out 20% of monitor.train" in monitor.describe()


def test_monitor_val_picks_when_given_and_cached_views_change_nothing(digits, base):
    """With monitor.val, the picking score is kNN fitted on all of monitor.train and scored on monitor.val. The
    views decoded once give the same scores at a second evaluation, and equal those decoded every time
    (monitor.cache_mb 0). val is the test folder here, which only monitor.allow_overlap lets through, said."""
    config = MonitorConfig(train=str(digits["train"]), test=str(digits["test"]), val=str(digits["test"]))
    with pytest.raises(HptError, match=r"monitor.test and monitor.val share 200 files by content .*allow_overlap"):
        LabelledMonitor(config, SIZE, 64)
    config = config.model_copy(update={"allow_overlap": True})
    cached = LabelledMonitor(config, SIZE, 64)
    assert "WARNING, allowed by monitor.allow_overlap: monitor.test and monitor.val share 200" in cached.describe()
    first = cached(base, "cpu")
    assert set(cached.views) == {"train", "test", "val"}
    assert all(isinstance(v.tensors[0], torch.Tensor) for v in cached.views.values())  # decoded, kept
    assert cached(base, "cpu") == first
    assert LabelledMonitor(config.model_copy(update={"cache_mb": 0}), SIZE, 64)(base, "cpu") == first
    assert first["knn_val_top1_k20"] == first["knn_top1_k20"]  # val is the test folder here: the same kNN
    assert "monitor.val (200 images)" in cached.describe()
