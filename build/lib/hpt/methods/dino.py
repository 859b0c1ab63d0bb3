"""DINO.

Caron et al., ICCV 2021, "Emerging Properties in Self-Supervised Vision Transformers": a student (backbone and
`DINOHead`) is trained to match, on every crop, the teacher's output of each other global crop (`losses/dino.py`:
the teacher's outputs centred and sharpened, cross-entropy against the student's softmax). The teacher is an EMA
of the student (momentum 0.996 -> 1 on a cosine), sees only the two global crops and gets no gradient. The
teacher's temperature warms up linearly from 0.04 to 0.07; the head's last layer does not train for the first
epoch; gradients are clipped (total norm 3). Multi-crop: 2 global crops and 8 local ones (96/224 of the image
size), one backbone pass per crop size. Across processes, the centre is the teacher's mean over the global batch
and BatchNorm statistics are synchronised (as DINO's ResNet-50, which converts both networks to SyncBatchNorm).

Continued from a base like every method: the base's backbone is copied into student and teacher, the heads are
new. As in the reference, the centre starts at 0 and the teacher starts equal to the student.

Deviations: every crop uses the run's view policy (hpt's `views.policy`, MoCo v2's augmentations by default), not
DINO's per-crop recipe (blur always on the first global crop, rarely on the second, solarisation on the second);
SGD with momentum by default (DINO's ResNet-50 recipe; `optim.name: adamw` is its ViT recipe), with the weight
decay constant (its ViTs raise it from 0.04 to 0.4 on a cosine); "the first epoch" and the temperature's warm-up
are given in steps and as a share of the run (`freeze_last_layer_steps`, `teacher_temperature_warmup`); the
collapse watch sees the student's normalised 256-d bottleneck of the first global crop, not its 65536 logits.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from hpt.backbones import Backbone
from hpt.config import DINOConfig
from hpt.data.views import LARGE_CROPS, MultiView, multi_crop, small_crop_size
from hpt.heads.dino import DINOHead
from hpt.losses.dino import dino_loss, teacher_targets, updated_centre
from hpt.methods.base import MethodRecord, SSLMethod, StepOutput, ViewFactory, frozen_throughout
from hpt.methods.crops import encode_crops


class DINO(SSLMethod):
    centre: torch.Tensor

    def __init__(self, backbone: Backbone, config: DINOConfig, image_size: int, steps: int) -> None:
        super().__init__()
        self.config = config
        self.momentum = (config.momentum_start, config.momentum_end)
        self.steps = steps
        self.small_size = small_crop_size(image_size, config.small_crop_ratio)
        warmup_steps = round(config.teacher_temperature_warmup * steps)
        self.warmup = np.linspace(config.teacher_temperature_start, config.teacher_temperature, warmup_steps)
        self.backbone = backbone
        self.head = DINOHead(
            backbone.num_features, config.hidden_dim, config.bottleneck_dim, config.out_dim, config.head_batch_norm
        )
        self.teacher_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("centre", torch.zeros(1, config.out_dim))

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.teacher_backbone), (self.head, self.teacher_head)]

    def notes(self) -> list[str]:
        frozen = self.config.freeze_last_layer_steps
        return frozen_throughout("DINO's last layer", "dino.freeze_last_layer_steps", frozen, self.steps)

    def views(self, make_view: ViewFactory) -> MultiView:
        return multi_crop(make_view, self.config.small_crops, self.small_size, self.config.crop_split)

    def teacher_temperature(self, step: int) -> float:
        """Linear from `teacher_temperature_start` at step 0 to `teacher_temperature` at the warm-up's last step
        (DINO's `np.linspace` over its warm-up epochs), then constant."""
        return float(self.warmup[step]) if step < len(self.warmup) else self.config.teacher_temperature

    def forward(self, views):
        batch = views[0].shape[0]
        frozen = self.step < self.config.freeze_last_layer_steps
        student, bottleneck = self.head(encode_crops(self.backbone, views), frozen_last_layer=frozen)
        with torch.no_grad():
            teacher, _ = self.teacher_head(self.teacher_backbone(torch.cat(views[:LARGE_CROPS])))
        targets = teacher_targets(list(teacher.split(batch)), self.centre, self.teacher_temperature(self.step))
        loss = dino_loss(list(student.split(batch)), targets, self.config.student_temperature)
        self.centre.copy_(updated_centre(self.centre, teacher, self.config.centre_momentum))
        return StepOutput(loss, bottleneck[:batch].detach())


RECORD = MethodRecord(
    "dino",
    DINOConfig,
    lambda backbone, config, _stats: DINO(backbone, config.dino, config.data.image_size, config.train.steps),
    unused_parameters=True,  # the head's last layer gets no gradient while frozen
)
