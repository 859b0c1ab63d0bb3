"""The online monitor: kNN accuracy of the backbone being trained, on a fixed labelled split.

It uses exactly what `hpt eval --protocol knn` uses (the same evaluation view, normalised with the labelled
training split's own statistics, and the same kNN), so a run's curve and its final `hpt eval` agree.
"""

from __future__ import annotations

import torch

from hpt.backbones import Backbone
from hpt.config import MonitorConfig
from hpt.data.dataset import ImageDataset
from hpt.data.files import find_images
from hpt.data.stats import pixel_stats
from hpt.data.views import eval_view
from hpt.errors import HptError
from hpt.eval.features import extract_features
from hpt.eval.knn import knn_accuracy

KS = (20, 200)
TEMPERATURE = 0.07


class KnnMonitor:
    def __init__(self, config: MonitorConfig, image_size: int, batch_size: int = 256, stats_sample: int = 5000) -> None:
        train, test = find_images(config.train, "monitor.train"), find_images(config.test, "monitor.test")
        if train.labels is None or test.labels is None:
            raise HptError("monitor: monitor.train and monitor.test need labels (one sub-folder per class)")
        index = {name: i for i, name in enumerate(train.classes)}
        unknown = sorted(set(test.classes) - set(index))
        if unknown:
            raise HptError(f"monitor.test: classes {', '.join(unknown[:5])} do not occur in monitor.train")
        stats = pixel_stats(train, image_size, stats_sample)
        view = eval_view(image_size, stats.mean, stats.std)
        self.train = ImageDataset(train, view)
        self.test = ImageDataset(test, view)
        self.test_labels = torch.tensor([index[test.classes[label]] for label in test.labels])
        self.batch_size = batch_size

    def __call__(self, backbone: Backbone, device: torch.device | str) -> dict[str, float]:
        train_features, train_labels = extract_features(backbone, self.train, self.batch_size, 0, device)
        test_features, _ = extract_features(backbone, self.test, self.batch_size, 0, device)
        return {f"knn_top1_k{k}": knn_accuracy(train_features, train_labels, test_features, self.test_labels, k,
                                                TEMPERATURE) for k in KS}


def build_monitor(config: MonitorConfig, image_size: int, batch_size: int) -> KnnMonitor | None:
    if config.train is None and config.test is None:
        return None
    if config.train is None or config.test is None:
        raise HptError("monitor: give both monitor.train and monitor.test (labelled image folders)")
    return KnnMonitor(config, image_size, batch_size)
