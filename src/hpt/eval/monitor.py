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
from hpt.eval.runner import Split, align_classes, knn_protocol, labelled

class KnnMonitor:
    def __init__(self, config: MonitorConfig, image_size: int, batch_size: int = 256, stats_sample: int = 5000) -> None:
        train = labelled(find_images(config.train, "monitor.train"), "monitor.train", config.train)
        test = align_classes(labelled(find_images(config.test, "monitor.test"), "monitor.test", config.test), train,
                             config.test)
        if train.multilabel is not None:
            raise HptError("monitor: the kNN monitor needs one label per image (one sub-folder per class)")
        stats = pixel_stats(train, image_size, stats_sample)
        view = eval_view(image_size, stats.mean, stats.std)
        self.train = ImageDataset(train, view)
        self.test = ImageDataset(test, view)
        self.batch_size = batch_size

    def __call__(self, backbone: Backbone, device: torch.device | str) -> dict[str, float]:
        train, test = (Split(*extract_features(backbone, dataset, self.batch_size, 0, device))
                       for dataset in (self.train, self.test))
        metrics, _ = knn_protocol(train, None, test)
        return metrics


def build_monitor(config: MonitorConfig, image_size: int, batch_size: int) -> KnnMonitor | None:
    if config.train is None and config.test is None:
        return None
    if config.train is None or config.test is None:
        raise HptError("monitor: give both monitor.train and monitor.test (labelled image folders)")
    return KnnMonitor(config, image_size, batch_size)
