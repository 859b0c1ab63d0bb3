"""The report's PNG plots (matplotlib: the `plots` extra): training curves, accuracy against steps, speed-up."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpt.extras import pyplot
from hpt.report.speedup import describe

if TYPE_CHECKING:
    from hpt.report.runs import RunRecord

plt = pyplot()
TRAINING_CURVES = (
    ("loss", "training loss", "train"),
    ("lr", "learning rate", "train"),
    ("embedding_spread", "embedding spread (1 even, 0 collapsed)", "train"),
    ("rankme", "RankMe (label-free)", "monitor"),
)
"""(key, axis label, which records): the panels of `training.png`, drawn for every run."""


def plot_training(runs: list[RunRecord], path: Path) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for axis, (key, label, source) in zip(axes.flat, TRAINING_CURVES):
        for run in runs:
            points = [(r["step"], r[key]) for r in (run.training if source == "train" else run.monitor) if key in r]
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, marker="o" if len(points) < 30 else None, label=f"{run.name} ({run.init})")
        axis.set_xlabel("pretraining steps")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_curves(runs: list[RunRecord], metric: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    base_drawn = False
    for run in runs:
        steps, accuracies = zip(*run.curve)
        axis.errorbar(steps, accuracies, yerr=run.errors, marker="o", capsize=3, label=f"{run.name} ({run.init})")
        if run.init != "scratch" and not base_drawn:
            axis.axhline(accuracies[0], color="grey", linestyle="--", label="base as it is")
            base_drawn = True
    axis.set_xlabel("pretraining steps")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_speedups(speedups: dict[str, float | None], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 3.5))
    names = list(speedups)
    finite = [v for v in speedups.values() if v is not None and v == v and v != float("inf")]
    ceiling = max(finite, default=1.0) * 1.2
    heights = [0.0 if v is None or v != v else (ceiling if v == float("inf") else v) for v in speedups.values()]
    bars = axis.bar(names, heights, color="tab:blue")
    for bar, value in zip(bars, speedups.values()):
        axis.annotate(
            describe(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8
        )
    axis.set_ylabel("speed-up over scratch (x)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
