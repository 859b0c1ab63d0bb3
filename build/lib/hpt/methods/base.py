"""The small contract every self-supervised method meets; methods are composed, not inherited into.

A method owns its backbone, heads and any state (queues, target networks, prototypes) and turns a batch of
views into a loss. The training loop needs only these few more facts from it, kept here and nowhere else: the
module's contract (`SSLMethod`) and the method's record (`MethodRecord`), which each method's file defines
as `RECORD` and `hpt.methods` collects by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import nn

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.config import MethodSection, PretrainConfig, TrainConfig
from hpt.data.stats import PixelStats


class ViewFactory(Protocol):
    """Builds the run's view policy at a crop size and scale range (defaults: the run's image size and crop)."""

    def __call__(self, size: int | None = None, scale: tuple[float, float] | None = None) -> Callable: ...


class StepOutput(NamedTuple):
    loss: torch.Tensor
    embeddings: torch.Tensor
    """The online embeddings the loss is computed on, of the first view (N x D), detached: what the loop
    watches for collapse."""


class SSLMethod(nn.Module):
    backbone: Backbone

    momentum: tuple[float, float] = (0.0, 0.0)
    """Start and end of the EMA momentum (cosine, reaching the end on the last step), for `momentum_pairs`."""

    teacher_origin: Origin | None = None
    """Where a frozen model the method learns from came from (distillation's teacher): the run's provenance records
    it beside the base."""

    step: int = 0
    """The (0-based) step of the next forward, as `on_step` was last told: for methods whose behaviour changes with
    it (MoCo's shuffle seed, SwAV's and DINO's frozen layers, DINO's temperature)."""

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        """The loss for one batch of views (each N x 3 x H x W), and the embeddings it came from."""
        raise NotImplementedError

    def views(self, make_view: ViewFactory) -> Callable:
        """What `forward` gets from each image: a transform returning a list of views."""
        raise NotImplementedError

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) modules that the loop updates by EMA after each optimiser step."""
        return []

    def notes(self) -> list[str]:
        """What the run's console says of the method as it starts, besides its name (distillation: its teacher)."""
        return []

    def on_step(self, step: int) -> None:
        """Told the step before each forward."""
        self.step = step


def frozen_throughout(part: str, key: str, frozen_steps: int, steps: int | None) -> list[str]:
    """The console's note when a part a method freezes for its first steps (its paper's first epoch, counted as
    an ImageNet epoch at batch 4096) would stay frozen for the whole run: a short run never trains it."""
    if steps is None or frozen_steps < steps:
        return []
    return [
        f"{part}: frozen for the whole run ({key} {frozen_steps} >= train.steps {steps}, the paper's first "
        f"epoch counted at ImageNet scale); set {key} to about one pass over your images to train it"
    ]


@dataclass(frozen=True)
class MethodRecord:
    """Everything hpt needs to know of a method besides its module: one per method, `RECORD` in its file."""

    name: str
    """As `--method` takes it; also the name of its config section."""
    section: type[MethodSection]
    """Its settings (defaults included, the learning rate among them): `PretrainConfig.<name>`."""
    build: Callable[[Backbone, PretrainConfig, PixelStats], SSLMethod]
    """(the starting backbone, the run's config, the statistics its views are normalised with) -> the method; its
    `views` is the method's view recipe."""
    shuffles_keys: bool = False
    """Across processes, shuffles the batch between them (MoCo's shuffling BN) instead of synchronising
    BatchNorm statistics, as its paper trains."""
    unused_parameters: bool = False
    """Some parameters get no gradient on some steps (SwAV's frozen prototypes): DDP must look for them."""

    def syncs_batch_norm(self, train: TrainConfig) -> bool:
        """`train.sync_batch_norm`, or by default: on, except for the methods that shuffle instead."""
        return train.sync_batch_norm if train.sync_batch_norm is not None else not self.shuffles_keys
