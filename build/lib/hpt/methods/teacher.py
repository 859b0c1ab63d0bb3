"""A frozen teacher: any model hpt loads (hub name, checkpoint file, run folder) that a method learns from, seeing
each view as its own preprocessing wants it.

The student's views come normalised with the run's data statistics at the run's image size. The teacher sees the
same views resized to its image size (bilinear, antialiased when smaller) and, where it records statistics of
its own (an hpt run's file), renormalised to them: x_teacher = (x * std_run + mean_run - mean_teacher) / std_teacher,
one affine map per channel. A teacher that records none (a hub's or a foreign file's weights) is normalised as the
student is: the data's own statistics, as `hpt eval` normalises such a model. The pixels themselves are the run's
(its intensity window and bands): an hpt teacher's recorded window is not applied again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import load_backbone
from hpt.config import NO_TEACHER, DistillConfig
from hpt.data.stats import PixelStats, recorded_stats
from hpt.errors import HptError


class Teacher(nn.Module):
    """Frozen and always in evaluation mode (its BatchNorm uses its own running statistics): `train()` leaves it
    so. `forward(views)`: its pooled features (N x `num_features`) of the student's normalised views."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(
        self,
        backbone: Backbone,
        image_size: int,
        scale: torch.Tensor,
        shift: torch.Tensor,
        normalisation: str = "the data's mean/std",
    ) -> None:
        """`scale`, `shift`: per channel, what turns the student's normalised pixels into the teacher's."""
        super().__init__()
        self.normalisation = normalisation
        self.backbone = backbone.requires_grad_(False)
        self.image_size = image_size
        self.num_features = backbone.num_features
        self.register_buffer("scale", scale.reshape(1, -1, 1, 1))
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1))
        self.train(False)

    def describe(self) -> str:
        return f"sees {self.image_size}-px views normalised with {self.normalisation}"

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            smaller = self.image_size < images.shape[-1]
            images = F.interpolate(
                images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=smaller
            )
        return self.backbone(images * self.scale + self.shift)


def load_teacher(config: DistillConfig, stats: PixelStats, image_size: int, in_chans: int) -> tuple[Teacher, Origin]:
    """The teacher `config.teacher` names, with `in_chans` input channels (an RGB teacher's first convolution is
    adapted to multi-band data, as a base's is), and where it came from.

    `stats`: what the student's views are normalised with; `image_size`: theirs."""
    if config.teacher is None:
        raise HptError(NO_TEACHER)
    backbone, origin = load_backbone(config.teacher, config.teacher_backbone, role="teacher", in_chans=in_chans)
    provenance = origin.provenance
    size = (
        config.teacher_image_size
        or (provenance.image_size if provenance else None)
        or backbone.fixed_input_size
        or image_size
    )
    backbone.check_image_size(size, "distill.teacher_image_size")
    recorded = recorded_stats(provenance, in_chans)
    own = recorded or stats
    run_mean, run_std = torch.tensor(stats.mean), torch.tensor(stats.std)
    mean, std = torch.tensor(own.mean), torch.tensor(own.std)
    kept = provenance.data.mean if provenance else None
    said = (
        "the mean/std it records"
        if recorded
        else f"the data's mean/std (it records them for {len(kept)} bands, the data has {in_chans})"
        if kept
        else "the data's mean/std (it records none)"
    )
    return Teacher(backbone, size, run_std / std, (run_mean - mean) / std, said), origin
