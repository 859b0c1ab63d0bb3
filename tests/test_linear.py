"""The linear probe against scikit-learn on the same features, and AUROC against roc_auc_score."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from hpt.eval.linear import accuracy, auroc, fit_linear, linear_probe


def test_separable_features_are_classified_perfectly():
    torch.manual_seed(0)
    labels = torch.arange(4).repeat(50)
    features = torch.randn(200, 16) + 6 * torch.eye(16)[labels]
    probe = fit_linear(features, labels, weight_decay=1e-4)
    assert accuracy(probe, features, labels) == 1.0


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_matches_scikit_learn_logistic_regression(C):
    """scikit-learn's 8x8 digits as features: the same objective gives the same test accuracy (within a point)."""
    x, y = load_digits(return_X_y=True)
    x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]
    scaler = StandardScaler().fit(x_train)
    reference = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(x_train), y_train)
    sklearn_accuracy = reference.score(scaler.transform(x_test), y_test)
    probe = fit_linear(torch.tensor(x_train), torch.tensor(y_train), weight_decay=1 / (C * len(x_train)))
    ours = accuracy(probe, torch.tensor(x_test), torch.tensor(y_test))
    # both minimise the same convex loss to their solvers' tolerances, so only test images within that of the
    # decision boundary may differ: at most 1% (6 of 597)
    assert abs(ours - sklearn_accuracy) <= 0.01, (ours, sklearn_accuracy)


def test_weight_decay_is_chosen_on_validation():
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x), torch.tensor(y)
    result = linear_probe((x[:600], y[:600]), (x[600:1200], y[600:1200]), (x[1200:], y[1200:]))
    validation = result["settings"]["validation"]
    assert result["metrics"]["linear_val_top1"] == max(validation.values())
    assert validation[str(result["settings"]["weight_decay"])] == max(validation.values())
    assert result["metrics"]["linear_top1"] > 0.9


def test_auroc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        scores = rng.integers(0, 6, 80).astype(float)  # many ties
        positives = rng.integers(0, 2, 80)
        assert auroc(torch.tensor(scores), torch.tensor(positives)) == pytest.approx(roc_auc_score(positives, scores))


def test_auroc_equals_scikit_learn_on_real_multilabel_probe_scores():
    """Real images (scikit-learn's 8x8 digits), three labels read from their classes (even, above 4, with a
    loop), scored by a fitted multi-label probe: each label's AUROC is scikit-learn's within 1e-6 (both are
    exact rank statistics in float64; only summation order differs)."""
    x, y = load_digits(return_X_y=True)
    targets = np.stack([y % 2 == 0, y > 4, np.isin(y, [0, 6, 8, 9])], axis=1).astype(np.int64)
    features, multi_hot = torch.tensor(x), torch.tensor(targets)
    probe = fit_linear(features[:1000], multi_hot[:1000], weight_decay=1e-3, multilabel=True)
    logits = probe.logits(features[1000:]).round(decimals=2)  # rounded: ties, as float16 logits have
    for c in range(3):
        ours = auroc(logits[:, c], multi_hot[1000:, c])
        assert abs(ours - roc_auc_score(targets[1000:, c], logits[:, c].numpy())) <= 1e-6
        assert 0.6 < ours < 1.0  # the probe learnt something, so the ranks are not trivial


def test_multilabel_probe_reports_mean_auroc():
    torch.manual_seed(0)
    features = torch.randn(300, 8)
    targets = (features[:, :3] > 0).long()  # three labels, each readable from one feature
    result = linear_probe(
        (features[:200], targets[:200]),
        (features[200:250], targets[200:250]),
        (features[250:], targets[250:]),
        multilabel=True,
    )
    assert result["metrics"]["linear_mean_auroc"] > 0.98
