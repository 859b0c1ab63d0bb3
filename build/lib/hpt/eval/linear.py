"""Linear probe on frozen, precomputed features: seconds, not thousands of augmented SGD steps.

As in HPT's linear evaluation (Reed et al., WACV 2022), the weight decay is chosen on a validation split and
the test accuracy is reported at that setting. The classifier is multinomial logistic regression (softmax
cross entropy), or one logistic regression per class for multi-label targets (scored by mean AUROC), fitted
to convergence with full-batch L-BFGS on standardised features (float32: this machine's float64 BLAS `dot`,
which L-BFGS calls in its inner loop, is two orders of magnitude slower), minimising
    mean cross-entropy + weight_decay / 2 * ||W||^2     (the bias is not decayed),
which is scikit-learn's LogisticRegression with C = 1 / (weight_decay * N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from hpt.core.interrupt import check as check_interrupt
from hpt.eval.uncertainty import SE, bootstrap_standard_error

WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class LinearProbe:
    weight: torch.Tensor  # classes x D, on standardised features
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    multilabel: bool

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return ((features.float() - self.mean) / self.std) @ self.weight.T + self.bias


def fit_linear(
    features: torch.Tensor, targets: torch.Tensor, weight_decay: float, multilabel: bool = False, max_iter: int = 500
) -> LinearProbe:
    """`targets`: N class indices, or N x C multi-hot (multilabel)."""
    x = features.float()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    x = (x - mean) / std
    classes = targets.shape[1] if multilabel else int(targets.max()) + 1
    weight = torch.zeros(classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective():
        optimizer.zero_grad()
        logits = x @ weight.T + bias  # N x classes
        if multilabel:
            data = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum") / len(x)
        else:
            data = F.cross_entropy(logits, targets)
        loss = data + weight_decay / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return LinearProbe(weight.detach(), bias.detach(), mean, std, multilabel)


def correct(probe: LinearProbe, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Whether each image is classified right (N booleans)."""
    return probe.logits(features).argmax(dim=1) == labels


def accuracy(probe: LinearProbe, features: torch.Tensor, labels: torch.Tensor) -> float:
    return float(correct(probe, features, labels).double().mean())


def auroc(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Area under the ROC curve of one class: the Mann-Whitney U statistic with average ranks for tied scores,
    in O(N log N) (one sort; equal to scikit-learn's `roc_auc_score`, tests/test_linear.py)."""
    scores, positives = scores.double().flatten(), positives.bool().flatten()
    n_pos = int(positives.sum())
    n_neg = len(scores) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # the 1-based rank of each distinct score's last copy
    average_rank = ends - (counts.double() - 1) / 2  # ties share the mean of the ranks they span
    rank_sum = float(average_rank[inverse][positives].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def mean_auroc(probe: LinearProbe, features: torch.Tensor, targets: torch.Tensor) -> float:
    return _mean_auroc_of(probe.logits(features), targets)


def _mean_auroc_of(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The mean over labels of each label's AUROC (labels with one kind of image in `targets` left out)."""
    values = [auroc(logits[:, c], targets[:, c]) for c in range(targets.shape[1])]
    valid = [v for v in values if v == v]
    return sum(valid) / len(valid) if valid else float("nan")


def linear_probe(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    multilabel: bool = False,
    weight_decays: tuple[float, ...] = WEIGHT_DECAYS,
) -> dict[str, Any]:
    """Fit one probe per weight decay on `train`, pick the best on `val`, report it on `test`: its metrics (mean
    AUROC with a bootstrap standard error for multi-label data), the settings, and `correct`, each test image's
    outcome per accuracy (for standard errors and paired comparisons, `uncertainty.py`), and `picked_on`, each
    validation image's at the chosen weight decay (to compare two steps where they are picked)."""
    score = mean_auroc if multilabel else accuracy
    name = "mean_auroc" if multilabel else "top1"
    results = []
    for weight_decay in weight_decays:
        check_interrupt()  # a stop signal is honoured between fits (`core/interrupt.py`)
        probe = fit_linear(*train, weight_decay=weight_decay, multilabel=multilabel)
        results.append((score(probe, *val), weight_decay, probe))
    best_val, best_decay, best = max(results, key=lambda r: (r[0], r[1]))
    x, y = test
    if multilabel:
        logits = best.logits(x)
        per_image: dict[str, torch.Tensor] = {}
        spread = {"linear_mean_auroc" + SE: bootstrap_standard_error(lambda i: _mean_auroc_of(logits[i], y[i]), len(y))}
    else:
        per_image, spread = {"linear_top1": correct(best, x, y)}, {}
    picked_on = {} if multilabel else {"linear_val_top1": correct(best, *val)}
    return {
        "metrics": {f"linear_{name}": score(best, *test), f"linear_val_{name}": best_val, **spread},
        "settings": {
            "weight_decay": best_decay,
            "weight_decays": list(weight_decays),
            "validation": {str(wd): v for v, wd, _ in results},
        },
        "correct": per_image,
        "picked_on": picked_on,
    }
