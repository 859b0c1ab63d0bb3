"""Devices, processes and precision for a run: Lightning Fabric, configured from `train.*`.

One process per device. With `train.devices` above 1 (or `train.num_nodes`), `hpt pretrain` is DDP:
- started as is, it starts the other processes of its node itself (Fabric re-runs the same command with
  `LOCAL_RANK` set), so `hpt pretrain --devices 4 ...` is a 4-GPU run;
- started by `torchrun` or SLURM's `srun`, Fabric finds the processes those started and joins them.
Rank 0 writes every file; every process reads its own slice of each global batch (`data/order.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from lightning_fabric import Fabric
from lightning_fabric.strategies import DDPStrategy

from hpt.config import PretrainConfig, TrainConfig
from hpt.errors import HptError
from hpt.train.loggers import default_loggers


def concrete_settings(config: PretrainConfig) -> PretrainConfig:
    """`train.precision: auto` and unset `train.loggers` made concrete for this machine, so that the run records
    what it ran with."""
    train = config.train
    loggers = default_loggers() if train.loggers is None else train.loggers
    return config.model_copy(
        update={"train": train.model_copy(update={"precision": _concrete(train), "loggers": loggers})}
    )


def _concrete(train: TrainConfig) -> Any:
    if train.precision != "auto":
        return train.precision
    cuda = train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return auto_precision(cuda, cuda and torch.cuda.is_bf16_supported())


def auto_precision(cuda: bool, bf16: bool) -> str:
    """bfloat16 autocast where the GPU computes in it (same range as float32, so no loss scaling; SSL recipes
    train in it), float32 elsewhere: a CPU's bfloat16 is slower than its float32."""
    return "bf16-mixed" if cuda and bf16 else "32-true"


def make_fabric(train: TrainConfig, unused_parameters: bool = False) -> Fabric:
    """`unused_parameters`: some trainable parameters get no gradient in some steps (SwAV's prototypes while
    frozen), which DDP must be told."""
    processes = train.devices * train.num_nodes
    if train.batch_size % processes:
        raise HptError(
            f"train.batch_size {train.batch_size} does not split evenly over {processes} processes "
            f"(train.devices {train.devices} x train.num_nodes {train.num_nodes}); the batch is global"
        )
    per_process = train.batch_size // processes
    if per_process % train.accumulate or per_process // train.accumulate < 2:
        raise HptError(
            f"train.accumulate {train.accumulate}: each process's batch of {per_process} must split into "
            f"{train.accumulate} equal micro-batches of at least 2 images (BatchNorm needs two); "
            "lower train.accumulate or raise train.batch_size"
        )
    strategy: str | DDPStrategy = "auto"
    if processes > 1 or train.strategy == "ddp":
        # Buffers stay each process's own: SwAV's queue holds this process's slice (BatchNorm statistics are
        # global with train.sync_batch_norm, and the backbone's are made rank 0's before each evaluation).
        strategy = DDPStrategy(find_unused_parameters=unused_parameters, forward_sync_buffers=False)
    try:
        return Fabric(
            accelerator=train.accelerator,
            strategy=strategy,
            devices=train.devices,
            num_nodes=train.num_nodes,
            precision=_concrete(train),
        )
    except (ValueError, RuntimeError, TypeError, ImportError) as exc:  # e.g. tpu without torch_xla
        raise HptError(
            f"train.accelerator {train.accelerator!r}, train.devices {train.devices}, train.precision "
            f"{train.precision!r}: {str(exc).splitlines()[0]}"
        ) from None


@contextmanager
def processes_stopped_on_failure(fabric: Fabric) -> Iterator[None]:
    """When the process that started the others fails, stop them too: they would wait for it forever.

    (Fabric already stops everything when one of the started processes fails; torchrun and SLURM do both.)"""
    try:
        yield
    except BaseException:
        for child in getattr(fabric.strategy.launcher, "procs", []):
            child.kill()
        raise
