"""Label-free criteria of a backbone's features, candidates for telling without labels whether a checkpoint is
better than another (`benchmarks/label_free.py` measures each against the linear probe).

Each is computed on a fixed sample of the run's own images: their features in the evaluation view (`plain`) and
in two training views drawn once with fixed seeds (`a`, `b`: the same views at every evaluation, so a criterion
changes only with the network). RankMe and alpha-ReQ live in `spectrum.py`.

- view retrieval (augmentation consistency): how often an image's view `a` finds the same image's view `b` as
  its nearest neighbour among every image's view `b` (cosine), and the other way round; higher is better.
- alignment and uniformity (Wang & Isola, "Understanding Contrastive Representation Learning through Alignment
  and Uniformity on the Hypersphere", ICML 2020, Eqs. 4-5, alpha 2, t 2), on L2-normalised features: the mean
  squared distance between the two views of an image (lower: more invariant), and the log of the mean Gaussian
  potential between different images (lower: more spread over the sphere).
- cluster agreement: k-means on the `a` features and on the `b` features, the two partitions compared by
  normalised mutual information; higher: the grouping survives augmentation.
- neighbourhood agreement with the start: the share of each image's k nearest neighbours (plain view) that were
  also its neighbours in the run's step-0 features; 1 at step 0, lower as the run moves away from its start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

NEIGHBOURS = 10
"""k of the neighbourhood agreement."""


def view_retrieval(a: torch.Tensor, b: torch.Tensor) -> float:
    """Top-1 accuracy of finding an image's other view among all images' other views, both ways, averaged."""
    similarity = F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T
    right = torch.arange(len(a))
    return float(((similarity.argmax(1) == right).float().mean() + (similarity.argmax(0) == right).float().mean()) / 2)


def alignment(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared distance between an image's two normalised views (Wang & Isola's alpha = 2)."""
    return float((F.normalize(a.float(), dim=1) - F.normalize(b.float(), dim=1)).pow(2).sum(1).mean())


def uniformity(features: torch.Tensor, t: float = 2.0) -> float:
    """log E[exp(-t ||x - y||^2)] over pairs of different images' normalised features (Wang & Isola's t = 2)."""
    x = F.normalize(features.float(), dim=1)
    distances = torch.pdist(x).pow(2)
    return float(torch.logsumexp(-t * distances, dim=0) - math.log(len(distances)))


def kmeans(features: torch.Tensor, k: int, seed: int, iterations: int = 30) -> torch.Tensor:
    """Cluster indices of Lloyd's k-means on normalised features, from k-means++ seeding fixed by `seed`."""
    x = F.normalize(features.float(), dim=1)
    generator = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(len(x), (1,), generator=generator)]
    for _ in range(1, k):
        nearest = torch.cdist(x, centres).min(1).values.pow(2)
        weights = nearest / nearest.sum() if nearest.sum() > 0 else torch.full_like(nearest, 1 / len(x))
        centres = torch.cat([centres, x[torch.multinomial(weights, 1, generator=generator)]])
    assigned = torch.cdist(x, centres).argmin(1)
    for _ in range(iterations):
        for j in range(k):
            members = x[assigned == j]
            if len(members):
                centres[j] = members.mean(0)
        now = torch.cdist(x, centres).argmin(1)
        if torch.equal(now, assigned):
            break
        assigned = now
    return assigned


def normalised_mutual_information(first: torch.Tensor, second: torch.Tensor) -> float:
    """NMI of two partitions of the same items, normalised by the mean of their entropies (1: the same)."""
    joint = torch.zeros(int(first.max()) + 1, int(second.max()) + 1, dtype=torch.float64)
    joint.index_put_((first, second), torch.ones(len(first), dtype=torch.float64), accumulate=True)
    joint /= joint.sum()
    p, q = joint.sum(1), joint.sum(0)
    nonzero = joint > 0
    mutual = (joint[nonzero] * (joint[nonzero] / (p[:, None] * q[None, :])[nonzero]).log()).sum()
    entropies = -(p[p > 0] * p[p > 0].log()).sum() - (q[q > 0] * q[q > 0].log()).sum()
    return float(2 * mutual / entropies) if entropies > 0 else 1.0


def cluster_agreement(a: torch.Tensor, b: torch.Tensor, seed: int = 0) -> float:
    """NMI between k-means partitions of the two views' features, k = sqrt(N / 2) (at least 2)."""
    k = max(2, round(math.sqrt(len(a) / 2)))
    return normalised_mutual_information(kmeans(a, k, seed), kmeans(b, k, seed))


def neighbours(features: torch.Tensor, k: int = NEIGHBOURS) -> torch.Tensor:
    """Each image's k nearest other images by cosine similarity (N x k indices)."""
    x = F.normalize(features.float(), dim=1)
    similarity = x @ x.T
    similarity.fill_diagonal_(-math.inf)
    return similarity.topk(min(k, len(x) - 1), dim=1).indices


def neighbour_agreement(start: torch.Tensor, now: torch.Tensor) -> float:
    """The mean share of each image's nearest neighbours (`neighbours`) in `now` that it had in `start` too."""
    before, after = neighbours(start), neighbours(now)
    shared = (after[:, :, None] == before[:, None, :]).any(2).float().sum(1)
    return float((shared / after.shape[1]).mean())
