"""Where a run's scalars go besides `metrics.jsonl`: Lightning's own loggers (`train.loggers`).

TensorBoard (`pip install 'hpt[tensorboard]'`; the default where it is installed, else CSV) writes
`RUN/tensorboard/`; CSV writes `RUN/csv/metrics.csv`; MLflow
(`pip install 'hpt[mlflow]'`, Lightning's `MLFlowLogger`) logs to `$MLFLOW_TRACKING_URI` when set, else to
`RUN/mlflow.db` (SQLite: `mlflow ui --backend-store-uri sqlite:///RUN/mlflow.db`), experiment `hpt`, one MLflow
run per attempt named after the folder. Training lines are logged as `train/NAME`, the monitor's evaluations
(step 0 included: the starting point) as `monitor/NAME`, each at its step; the start's view grid as the image
`views`. Weights & Biases (`pip install 'hpt[wandb]'`, Lightning's `WandbLogger`) logs to project
`$WANDB_PROJECT` (default `hpt`), the W&B run named after the folder, its files in `RUN/wandb/`; `WANDB_MODE=offline`
keeps it on the machine. Only the process that writes the run logs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.loggers import CSVLogger, Logger, TensorBoardLogger

from hpt.core.run_files import LOGGER_FILES
from hpt.errors import HptError, first_line
from hpt.extras import EXTRAS, installed, require

FILES = LOGGER_FILES


def default_loggers() -> list[str]:
    """`train.loggers` left unset: TensorBoard where its extra is installed, else CSV (a file every tool reads)."""
    return ["tensorboard"] if installed("tensorboard") else ["csv"]


def without_tensorboard(names: Sequence[str]) -> str | None:
    """The console's line when the default fell back to CSV for want of TensorBoard, else None."""
    if list(names) != ["csv"] or installed("tensorboard"):
        return None
    return "scalars: metrics.jsonl and csv/metrics.csv (TensorBoard is not installed: pip install 'hpt[tensorboard]')"


def check_loggers(names: Sequence[str] | None) -> None:
    """Refuse, before anything starts, a logger whose package is missing, or MLflow with a tracking URI it
    cannot use (an unknown scheme, its retired file store)."""
    names = default_loggers() if names is None else names
    for name in names:
        if name in EXTRAS:
            require(name, f"train.loggers {name}")
    if "mlflow" in names and os.environ.get("MLFLOW_TRACKING_URI"):
        from mlflow.tracking import MlflowClient

        uri = os.environ["MLFLOW_TRACKING_URI"]
        try:
            MlflowClient(tracking_uri=uri)._tracking_client.store  # noqa: B018 - made here, where a bad URI fails
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own types for each kind of store
            raise HptError(
                f"train.loggers: mlflow cannot use MLFLOW_TRACKING_URI '{uri}' ({first_line(exc)}); unset it to "
                "log into the run folder's own mlflow.db"
            ) from None


def make_loggers(names: Sequence[str] | None, run: Path) -> list[Logger]:
    names = default_loggers() if names is None else names
    check_loggers(names)
    return [_make(name, run) for name in names]


def _make(name: str, run: Path) -> Logger:
    if name == "tensorboard":
        return TensorBoardLogger(root_dir=run, name=FILES[name], version="")
    if name == "csv":
        return CSVLogger(root_dir=run, name=FILES[name], version="")
    if name == "wandb":
        from pytorch_lightning.loggers import WandbLogger  # the hpt[wandb] extra

        return WandbLogger(save_dir=str(run), project=os.environ.get("WANDB_PROJECT", "hpt"), name=run.name)
    from pytorch_lightning.loggers import MLFlowLogger  # the hpt[mlflow] extra

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run / FILES[name]).resolve()}"
    return MLFlowLogger(experiment_name="hpt", run_name=run.name, tracking_uri=uri)


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
        if logger.__class__.__name__ == "WandbLogger":  # its class is in the optional extra
            getattr(logger, "experiment").finish()  # noqa: B009 - else the process's next run logs into this one
