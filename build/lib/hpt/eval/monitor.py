"""The online monitor: how good the backbone being trained is, at step 0, every few steps and at the end.

Two scores, each logged to `metrics.jsonl` at every evaluation:
- with labels (`monitor.train`, `monitor.test`, optionally `monitor.val`): kNN accuracy (or, with
  `monitor.protocol: linear`, a linear probe's, its weight decay chosen on a fifth of `monitor.train`; `both`:
  each, on the same features, the linear probe picking) on `monitor.test` with its standard error, exactly as
  `hpt eval` computes it (the same evaluation view in the run's own preprocessing, the same protocol), so a
  run's curve and its final `hpt eval` agree; and the validation score the best step is picked by, on
  `monitor.val` or a held-out fifth of `monitor.train` (`LabelledMonitor`): the test split picks nothing;
- without: RankMe (`spectrum.py`; alpha-ReQ is logged beside it) of the backbone's features on a fixed
  sample of the run's own images (`monitor.label_free_sample`; held out of training, at most a tenth of the
  data, when it picks the exported backbone), and, when asked (`monitor.label_free_criteria`, or
  `label_free_pick`), the criteria of `label_free.py` on two fixed training views of the same sample (view
  retrieval, alignment, uniformity, cluster agreement, neighbourhood agreement with step 0).

The run keeps the backbone of its best evaluation by `selects_by`: the labelled validation score when there
are labels; without them view retrieval, only when asked (`monitor.label_free_pick`). Measured against the
linear probe (benchmarks/results/label_free): no label-free criterion picked within a point of the labels' pick
in every run; view retrieval's pick was the best of them, RankMe's worse than simply keeping the last step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hpt.backbones import Backbone
from hpt.config import MonitorConfig
from hpt.data.dataset import ImageDataset
from hpt.data.decode import RGB, Decoding
from hpt.data.files import ImageList
from hpt.data.stats import PixelStats
from hpt.errors import HptError
from hpt.eval import label_free
from hpt.eval.features import extract_features
from hpt.eval.labelled import read_labelled
from hpt.eval.protocols import PROTOCOLS, EvalTask, knn_scores, whole_groups
from hpt.eval.spectrum import alpha_req, rankme
from hpt.eval.uncertainty import DISAGREEING, images_to_resolve, resolution

SELECTS_BY = {"knn": "knn_val_top1_k20", "linear": "linear_val_top1", "both": "linear_val_top1"}
"""The validation score each labelled protocol picks the best step by."""
REPORTS = {"knn": "knn_top1_k20", "linear": "linear_top1", "both": "linear_top1"}
"""The test score each labelled protocol reports the pick by: never the score that picked it."""
VALIDATION_FRACTION = 0.2
"""Without `monitor.val`, the stratified, seeded share of `monitor.train` the pick is made on (`hpt eval`'s
linear probe chooses its weight decay on the same share, with the same seed)."""
LABEL_FREE_PICK = "view_retrieval"
"""The label-free score `monitor.label_free_pick` picks by: the best label-free pick of benchmarks/label_free.py."""
FEATURE_RANK = "rankme"
"""The label-free monitor's score of the features' spread (`spectrum.py`): NaN when a feature is not finite."""
MIN_LABEL_FREE_SAMPLE = 16
"""Fewer held-out images than this give no useful rank; the label-free score is then off."""


class LabelledMonitor:
    """kNN and/or linear-probe accuracy of the backbone on labelled splits, three roles kept apart: the
    classifier is fitted on `monitor.train`, the best step is picked by the score on validation images
    (`monitor.val`, or a held-out fifth of `monitor.train`, fitted on the rest), and reported on `monitor.test`,
    which picks nothing. The test score of each evaluation comes with its standard error, and each test image's
    outcome is kept (`outcomes`) for the paired comparisons of the finish (`uncertainty.py`).

    Pixels as the run's own: its window, bands and mean/std (`stats`), so that `hpt eval RUN` on the same splits
    gives the same test numbers. The evaluation views are decoded once and kept as tensors when they fit in
    `monitor.cache_mb`; otherwise they are decoded at each evaluation by `workers` loader processes."""

    def __init__(
        self,
        config: MonitorConfig,
        image_size: int,
        batch_size: int = 256,
        stats_sample: int = 5000,
        decoding: Decoding = RGB,
        stats: PixelStats | None = None,
        workers: int = 0,
    ) -> None:
        assert config.train is not None and config.test is not None
        names = {"train": "monitor.train", "test": "monitor.test", "val": "monitor.val"}
        allow = "monitor.allow_overlap: true (--set monitor.allow_overlap=true)"
        others = {"test": config.test, "val": config.val}
        images = read_labelled(config.train, others, names, config.allow_overlap, allow)
        if images.multilabel:
            raise HptError("monitor: the monitor needs one label per image (one sub-folder per class)")
        self.protocol = config.protocol
        images = images.with_channels(decoding.channels, decoding.bands)  # the run's bands: others left out
        self.data = images.in_view(image_size, stats_sample, decoding, stats)  # the run's own pixels
        self.batch_size, self.workers, self.cache_bytes = batch_size, workers, config.cache_mb * 2**20
        self.views: dict[str, Dataset] = {}
        self.outcomes: dict[int, torch.Tensor] = {}
        """Per evaluated step, whether each test image was classified right by the reported score."""
        self.validation_outcomes: dict[int, torch.Tensor] = {}
        """Per evaluated step, whether each validation image was classified right by the score that picks: two
        steps are told apart by them only beyond their noise (`train/best.py`)."""

    @property
    def selects_by(self) -> str:
        return SELECTS_BY[self.protocol]

    @property
    def reports(self) -> str:
        return REPORTS[self.protocol]

    @property
    def validation(self) -> str:
        """Which images the pick is made on, in words."""
        splits = self.data.images.splits
        if "val" in splits:
            return f"monitor.val ({len(splits['val'])} images)"
        held = self.validation_images
        return f"a held-out {VALIDATION_FRACTION:.0%} of monitor.train (about {held} images, seeded, per class)"

    @property
    def validation_images(self) -> int:
        splits = self.data.images.splits
        return len(splits["val"]) if "val" in splits else round(VALIDATION_FRACTION * len(splits["train"]))

    def resolves(self) -> str:
        """What the pick can tell apart, in words: the smallest difference between two steps its validation
        images can show, and how many would show a few points."""
        n, assumed = self.validation_images, f"if {DISAGREEING:.0%} of them change answer between two steps"
        return (
            f"{n} validation images tell two steps apart only when they differ by about "
            f"{100 * resolution(n):.0f} points or more (95%, {assumed}); about {images_to_resolve(0.03):,} "
            "would resolve 3 points (80% of the time)"
        )

    def describe(self) -> str:
        test, need = len(self.data.images.splits["test"]), self._view_bytes()
        kept = (
            f"their views decoded once and kept ({need / 2**20:.0f} MB)"
            if need <= self.cache_bytes
            else f"their views decoded at each evaluation ({need / 2**20:.0f} MB > monitor.cache_mb)"
        )
        overlaps = self.data.images.overlaps
        shared = f"; WARNING, allowed by monitor.allow_overlap: {'; '.join(overlaps)}" if overlaps else ""
        return (
            f"monitor: picks the best step by {self.selects_by} on {self.validation}; reports {self.reports} on "
            f"monitor.test ({test} images, which picks nothing), in the run's own preprocessing; {kept}. "
            f"{self.resolves()}{shared}"
        )

    def __call__(self, backbone: Backbone, device: torch.device | str, step: int | None = None) -> dict[str, float]:
        task = EvalTask(  # `both`: one feature pass for the two protocols
            backbone, self.data, device, self.batch_size, self.workers, VALIDATION_FRACTION, datasets=self._views()
        )
        metrics: dict[str, float] = {}
        for protocol in ["knn", "linear"] if self.protocol == "both" else [self.protocol]:
            result = PROTOCOLS[protocol](task)
            metrics.update(result.metrics)
            picked_on = dict(result.picked_on)
            if protocol == "knn":  # the validation score: fitted on train without the validation images
                fit, val, _ = task.fit_and_validation()
                validation = knn_scores(fit, val)
                metrics["knn_val_top1_k20"] = validation.metrics["knn_top1_k20"]
                picked_on["knn_val_top1_k20"] = validation.correct["knn_top1_k20"]
            if step is not None and self.reports in result.correct:
                self.outcomes[step] = result.correct[self.reports]
            if step is not None and self.selects_by in picked_on:
                self.validation_outcomes[step] = picked_on[self.selects_by]
        return metrics

    def _views(self) -> dict[str, Dataset]:
        """Each split's evaluation views as tensors, decoded at the first evaluation, when they fit the budget."""
        if not self.views and self._view_bytes() <= self.cache_bytes:
            self.views = {role: decoded(self.data.dataset(role), self.workers) for role in self.data.images.splits}
        return self.views

    def _view_bytes(self) -> int:
        """The memory every split's evaluation views take as float32 tensors."""
        channels, size = self.data.decoding.channels, self.data.image_size
        return sum(len(images) for images in self.data.images.splits.values()) * channels * size * size * 4


def decoded(dataset: Dataset, workers: int) -> TensorDataset:
    """Every item of `dataset` (a deterministic evaluation view) decoded once: (images, labels) tensors."""
    loader = DataLoader(dataset, batch_size=256, shuffle=False, num_workers=workers)
    images, labels = zip(*loader)
    return TensorDataset(torch.cat(images), torch.cat([torch.as_tensor(label) for label in labels]))


class LabelFreeMonitor:
    """RankMe and alpha-ReQ of the features of a fixed sample in the evaluation view; with `pair_view` (a
    training view), the criteria of `label_free.py` on two views of each image drawn once with fixed seeds."""

    def __init__(
        self,
        images: ImageList,
        view: Callable,
        batch_size: int = 256,
        decoding: Decoding = RGB,
        pair_view: Callable | None = None,
        seed: int = 0,
    ) -> None:
        self.images = ImageDataset(images, view, decoding)
        self.pair = [SeededViews(images, pair_view, decoding, seed, which) for which in (0, 1)] if pair_view else None
        self.batch_size, self.seed = batch_size, seed
        self.start: torch.Tensor | None = None

    def __call__(self, backbone: Backbone, device: torch.device | str, step: int | None = None) -> dict[str, float]:
        features, _ = extract_features(backbone, self.images, self.batch_size, 0, device)
        scores = {FEATURE_RANK: rankme(features), "alpha_req": alpha_req(features)}
        if self.pair is None:
            return scores
        a, b = (extract_features(backbone, views, self.batch_size, 0, device)[0] for views in self.pair)
        scores |= {
            "view_retrieval": label_free.view_retrieval(a, b),
            "alignment": label_free.alignment(a, b),
            "uniformity": label_free.uniformity(features),
            "cluster_agreement": label_free.cluster_agreement(a, b, self.seed),
        }
        if step == 0:
            self.start = features
        if self.start is not None:  # not after a resume: the start's features are not kept on disk
            scores["neighbour_agreement"] = label_free.neighbour_agreement(self.start, features)
        return scores


class SeededViews(ImageDataset):
    """`view` of each image drawn with its own fixed seed: the same view at every evaluation, whatever the
    training's random state, which it leaves as it was."""

    def __init__(self, images: ImageList, view: Callable, decoding: Decoding, seed: int, which: int) -> None:
        super().__init__(images, view, decoding)
        self.seed, self.which = seed, which

    def __getitem__(self, index: int) -> tuple[Any, int]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + 2 * index + self.which)
            return super().__getitem__(index)


@dataclass(frozen=True)
class Monitor:
    labelled: LabelledMonitor | None
    label_free: LabelFreeMonitor | None
    label_free_pick: bool = False

    @property
    def selects_by(self) -> str | None:
        """The score the best evaluation is chosen by; None: there is none to trust."""
        if self.labelled is not None:
            return self.labelled.selects_by
        picks = self.label_free is not None and self.label_free.pair is not None and self.label_free_pick
        return LABEL_FREE_PICK if picks else None

    def __call__(self, backbone: Backbone, device: torch.device | str, step: int | None = None) -> dict[str, float]:
        """The scores of `backbone` after `step` steps (step 0: the start the label-free criteria compare with)."""
        scores = self.labelled(backbone, device, step) if self.labelled is not None else {}
        if self.label_free is not None:
            scores |= self.label_free(backbone, device, step)
        return scores


def hold_out(
    images: ImageList, config: MonitorConfig, batch_size: int, seed: int
) -> tuple[ImageList, ImageList | None]:
    """(images to train on, the label-free score's sample or None), fixed by the seed.

    When the score picks the exported backbone (`label_free_pick`) its sample is held out of training, never
    so much that fewer than a batch are left; when it is only logged, it is drawn from the training images, so
    that a number nobody picks by costs no training data."""
    if config.label_free_pick:
        count = min(config.label_free_sample, len(images) // 10, len(images) - batch_size)
    else:
        count = min(config.label_free_sample, len(images))
    if count < MIN_LABEL_FREE_SAMPLE:
        return images, None
    generator = torch.Generator().manual_seed(seed)
    if images.frames is None:
        chosen = set(torch.randperm(len(images), generator=generator)[:count].tolist())
    else:  # the frames of one file on one side: whole files, in a seeded order, until `count` images
        groups = torch.tensor(images.groups())
        chosen = set(whole_groups(torch.arange(len(images)), groups, count, generator).tolist())
    sample = images.subset(sorted(chosen))
    if not config.label_free_pick:
        return images, sample
    return images.subset([i for i in range(len(images)) if i not in chosen]), sample


def build_monitor(
    config: MonitorConfig,
    image_size: int,
    batch_size: int,
    held_out: ImageList | None,
    view: Callable,
    decoding: Decoding = RGB,
    pair_view: Callable | None = None,
    seed: int = 0,
    stats: PixelStats | None = None,
    workers: int = 0,
) -> Monitor | None:
    """`view`: the evaluation view; `pair_view`: the training view the label-free criteria's pairs are drawn in;
    `stats`: the run's mean/std, which the labelled splits are normalised with."""
    if (config.train is None) != (config.test is None):
        raise HptError("monitor: give both monitor.train and monitor.test (labelled image folders)")
    if config.val is not None and config.train is None:
        raise HptError("monitor: monitor.val needs monitor.train and monitor.test too")
    labels = (
        LabelledMonitor(config, image_size, batch_size, decoding=decoding, stats=stats, workers=workers)
        if config.train is not None
        else None
    )
    label_free = (
        LabelFreeMonitor(held_out, view, batch_size, decoding, pair_view, seed) if held_out is not None else None
    )
    return Monitor(labels, label_free, config.label_free_pick) if labels or label_free else None
