"""Weighted k-nearest-neighbour classification on frozen features (a pure function over tensors).

Wu et al., CVPR 2018 ("Unsupervised Feature Learning via Non-Parametric Instance Discrimination"), as used by
DINO's `eval_knn.py`: cosine similarity, the k nearest training features vote for their label with weight
exp(similarity / T); T = 0.07, k = 20 and 200.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    k: int,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Predicted label for each test feature (N_test). `k` is capped at the number of training samples."""
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, train_features.shape[0])
    train = F.normalize(train_features.float(), dim=1)  # N_train x D
    predictions = []
    for start in range(0, test_features.shape[0], chunk):
        test = F.normalize(test_features[start : start + chunk].float(), dim=1)  # B x D
        similarity = test @ train.T  # B x N_train
        top_sim, top_idx = similarity.topk(k, dim=1)  # B x k
        weights = (top_sim / temperature).exp()  # B x k
        votes = torch.zeros(test.shape[0], num_classes, dtype=weights.dtype)
        votes.scatter_add_(1, train_labels[top_idx], weights)  # B x classes
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_correct(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Whether each test image is classified right (N_test booleans)."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    predicted = knn_predict(train_features, train_labels, test_features, k, temperature, num_classes)
    return predicted == test_labels
