"""`RUN/checkpoint.safetensors`: everything `--resume` continues from, and the rule that only healthy weights
are saved.

It holds the method's whole state (backbone, heads, momentum encoder, queue, prototypes), the optimiser's
momentum buffers and the RNG states. The step (in the provenance) is the rest: learning rate, EMA momentum
and data order are functions of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from hpt.checkpoints.files import modified_since_written, read_tensors, save_tensors
from hpt.checkpoints.provenance import CHECKPOINT_FORMAT, FileProvenance, read_record, record_of
from hpt.core.run_files import CHECKPOINT
from hpt.errors import HptError
from hpt.methods import SSLMethod
from hpt.train.health import all_finite

OPTIMIZER_PREFIX = "optimizer."
RNG_PREFIX = "rng."
DATA_PREFIX = "data."
"""Where the data's own order is, when the checkpoint cannot recompute it from the step: a stream of shards'."""


@dataclass(frozen=True)
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    provenance: FileProvenance

    @property
    def steps(self) -> int:
        return self.provenance.steps

    @property
    def wall_time_s(self) -> float:
        return self.provenance.wall_time_s

    @property
    def adaptations(self) -> dict[str, Any]:
        return dict(self.provenance.adaptations)

    def restore(self, method: SSLMethod, optimizer: torch.optim.Optimizer) -> None:
        method.load_state_dict(
            {k: v for k, v in self.tensors.items() if not k.startswith((OPTIMIZER_PREFIX, RNG_PREFIX, DATA_PREFIX))},
            strict=True,
        )
        state = optimizer.state_dict()
        restored: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in self.tensors.items():
            if key.startswith(OPTIMIZER_PREFIX):
                index, name = key[len(OPTIMIZER_PREFIX) :].split(".", 1)
                restored.setdefault(int(index), {})[name] = value
        state["state"] = restored
        optimizer.load_state_dict(state)

    def restore_rng(self) -> None:
        """Last of all, so that nothing in the set-up shifts what the steps draw."""
        if f"{RNG_PREFIX}cpu" in self.tensors:  # checkpoints written before RNG states were saved
            torch.set_rng_state(self.tensors[f"{RNG_PREFIX}cpu"])
        cuda = sorted(
            (k for k in self.tensors if k.startswith(f"{RNG_PREFIX}cuda.")), key=lambda k: int(k.rsplit(".", 1)[1])
        )
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([self.tensors[k] for k in cuda])


def read_checkpoint(run: Path, allow_modified: bool = False) -> Checkpoint | None:
    """`allow_modified`: read it though its sha256 no longer matches (`--allow-modified`; the plan checked it)."""
    path = run / CHECKPOINT
    if not path.is_file():
        return None
    if not allow_modified and modified_since_written(path):
        raise HptError(
            f"--resume: '{path}' was modified since it was written (its content no longer matches the sha256 "
            "recorded in it); start again with --overwrite, restore the file, or pass --allow-modified"
        )
    tensors, raw = read_tensors(path)
    provenance = record_of(raw)
    if provenance is None or provenance.format != CHECKPOINT_FORMAT:
        raise HptError(f"--resume: '{path}' is not an hpt checkpoint")
    return Checkpoint(tensors, provenance)


def save_checkpoint(
    run: Path,
    method: SSLMethod,
    optimizer: torch.optim.Optimizer,
    provenance: FileProvenance,
    writes: bool = True,
    data: dict[str, torch.Tensor] | None = None,
) -> None:
    """Only healthy weights are saved: a non-finite parameter stops the run (every process: their weights are
    the same) and leaves the last checkpoint; `writes`: this is the process that writes."""
    if not all_finite(method.parameters()):
        raise unhealthy("the weights became non-finite", provenance.steps, run)
    if not writes:
        return
    tensors = dict(method.state_dict())
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{name}"] = value
    tensors |= data or {}  # where a stream of shards is (`data/shards.py`)
    tensors[f"{RNG_PREFIX}cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{RNG_PREFIX}cuda.{index}"] = state
    save_tensors(run / CHECKPOINT, tensors, replace(provenance, format=CHECKPOINT_FORMAT).to_dict())


def unhealthy(what: str, step: int, run: Path) -> HptError:
    """The error that stops a run whose numbers stopped being finite, naming the checkpoint that is intact."""
    last = read_record(run / CHECKPOINT) if (run / CHECKPOINT).is_file() else None
    kept = (
        f"the last good checkpoint (step {last.steps}) is intact in '{run / CHECKPOINT}'"
        if last
        else "no checkpoint had been written yet"
    )
    return HptError(f"{what} at step {step}; {kept}; start again with a lower learning rate (optim.lr)")
