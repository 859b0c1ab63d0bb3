import math

import pytest
import torch
import torch.nn.functional as F

from hpt.eval.knn import knn_correct, knn_predict


def naive_knn(train, train_labels, test, k, temperature, num_classes):
    train = F.normalize(train, dim=1)
    predictions = []
    for x in F.normalize(test, dim=1):
        sims = sorted(((float(x @ t), int(y)) for t, y in zip(train, train_labels)), reverse=True)[:k]
        votes = [0.0] * num_classes
        for sim, label in sims:
            votes[label] += math.exp(sim / temperature)
        predictions.append(max(range(num_classes), key=votes.__getitem__))
    return torch.tensor(predictions)


@pytest.mark.parametrize("k,temperature", [(1, 0.07), (5, 0.07), (20, 0.5)])
def test_knn_matches_a_naive_loop(k, temperature):
    torch.manual_seed(k)
    train, labels = torch.randn(60, 8, dtype=torch.float64), torch.randint(0, 4, (60,))
    test = torch.randn(25, 8, dtype=torch.float64)
    got = knn_predict(train, labels, test, k, temperature, num_classes=4, chunk=7)
    assert torch.equal(got, naive_knn(train, labels, test, k, temperature, 4))


def test_knn_separates_clusters_and_caps_k():
    torch.manual_seed(0)
    centres = torch.eye(3) * 10
    train_labels = torch.arange(3).repeat(10)
    train = centres[train_labels] + torch.randn(30, 3)
    test_labels = torch.arange(3).repeat(5)
    test = centres[test_labels] + torch.randn(15, 3)
    assert knn_correct(train, train_labels, test, test_labels, k=20).all()
    assert knn_correct(train, train_labels, test, test_labels, k=200).all()  # k capped at 30
