"""Where a run's scalars go besides `metrics.jsonl`: Lightning Fabric's own loggers (`train.loggers`).

TensorBoard (on by default) writes `RUN/tensorboard/`; CSV writes `RUN/csv/metrics.csv`. Training lines are
logged as `train/NAME`, the monitor's evaluations (step 0 included: the starting point) as `monitor/NAME`,
each at its step; the start's view grid as the image `views`. Only the process that writes the run logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.loggers import CSVLogger, Logger, TensorBoardLogger

from hpt.errors import HptError

FOLDERS = {"tensorboard": "tensorboard", "csv": "csv"}
"""Each logger's folder in the run folder."""


def check_loggers(names: Sequence[str]) -> None:
    """Refuse, before anything starts, a logger whose package is missing."""
    if "tensorboard" in names:
        try:
            import tensorboard  # noqa: F401 - Fabric's TensorBoardLogger writes through it
        except ImportError:
            raise HptError("train.loggers: tensorboard needs its package: pip install tensorboard") from None


def make_loggers(names: Sequence[str], run: Path) -> list[Logger]:
    check_loggers(names)
    return [
        TensorBoardLogger(root_dir=run, name=FOLDERS[name], version="")
        if name == "tensorboard"
        else CSVLogger(root_dir=run, name=FOLDERS[name], version="")
        for name in names
    ]


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A `metrics.jsonl` record's numbers, named by group: `train/loss`, `monitor/knn_top1_k20`."""
    group = "monitor" if "monitor" in record else "train"
    return {
        f"{group}/{key}": float(value)
        for key, value in record.items()
        if key != "step" and isinstance(value, int | float) and not isinstance(value, bool)
    }


def log_record(loggers: list[Logger], record: dict[str, Any]) -> None:
    values = scalars(record)
    for logger in loggers:
        logger.log_metrics(values, step=int(record["step"]))
        logger.save()  # flushed as metrics.jsonl is: a killed run loses nothing logged


def log_image(loggers: list[Logger], tag: str, image: torch.Tensor) -> None:
    """`image` (3 x H x W in [0, 1]) into the loggers that hold images (TensorBoard)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, image, 0)
            logger.experiment.flush()


def close(loggers: list[Logger]) -> None:
    for logger in loggers:
        logger.finalize("success")
