"""Distillation of a frozen teacher into the base.

SEED (Fang et al., ICLR 2021, "SEED: Self-supervised Distillation for Visual Representation"): a larger frozen
teacher and the student (here the base's backbone with a new 2-layer projection MLP) encode the same augmented
view; the student learns the teacher's similarity distribution over the current teacher embedding and a queue of
past ones (`losses/seed.py`, temperatures 0.2 for the student and SEED's code default 1e-4 for the teacher).
`distill.loss: cosine` regresses the student's projection onto the teacher's embedding instead (2 - 2 cos, BYOL's
loss without its predictor). The teacher is any model hpt loads (`methods/teacher.py`: its own image size and
statistics honoured), held in evaluation mode and never trained; the exported student is an ordinary backbone,
its provenance naming the teacher (`hpt inspect`). Across processes the queue takes the global batch's teacher
embeddings and BatchNorm statistics are synchronised.

Deviations from SEED's code: the teacher's embedding is its backbone's pooled features (SEED takes the output of
the teacher's self-supervised projection head, 128-d; hpt's teachers are backbones, whatever trained them), so
the student's MLP maps onto the teacher's feature width; the queue holds only embeddings enqueued so far (SEED
starts it with random vectors, as MoCo: `methods/queue.py` says why not) and is 16384 long by default, not 65536
(1280-d features x 65536 would be 335 MB in every checkpoint).
The checkpoint holds the teacher's weights too: a resumed run distils from the very teacher it started with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.config import DistillConfig, PretrainConfig
from hpt.core.distributed import gather
from hpt.data.stats import PixelStats
from hpt.data.views import MultiView
from hpt.heads import ProjectionMLP
from hpt.losses.byol import byol_loss
from hpt.losses.seed import seed_loss
from hpt.methods.base import MethodRecord, SSLMethod, StepOutput, ViewFactory
from hpt.methods.queue import KeyQueue
from hpt.methods.teacher import Teacher, load_teacher


class Distill(SSLMethod):
    def __init__(self, backbone: Backbone, config: DistillConfig, teacher: Teacher, origin: Origin | None = None):
        super().__init__()
        self.config = config
        self.teacher_origin = origin
        self.backbone = backbone
        self.head = ProjectionMLP(
            backbone.num_features, config.hidden_dim or backbone.num_features, teacher.num_features
        )
        self.teacher = teacher
        self.queue = KeyQueue(teacher.num_features, config.queue_size) if config.loss == "seed" else None

    def notes(self) -> list[str]:
        origin = self.teacher_origin
        named = f"{origin.spec} ({origin.backbone})" if origin else "a frozen model"
        return [f"teacher {named}, frozen: {self.teacher.describe()}; loss {self.config.loss}"]

    def views(self, make_view: ViewFactory) -> MultiView:
        return MultiView([make_view()])  # one view, seen by both (SEED's)

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        (images,) = views
        student = F.normalize(self.head(self.backbone(images)), dim=1)
        target = F.normalize(self.teacher(images), dim=1)
        if self.queue is None:
            loss = byol_loss(student, target)
        else:
            config = self.config
            loss = seed_loss(
                student, target, self.queue.negatives(), config.student_temperature, config.teacher_temperature
            )
            self.queue.push(gather(target))  # every process enqueues the teacher embeddings of the global batch
        return StepOutput(loss, student.detach())


def _build(backbone: Backbone, config: PretrainConfig, stats: PixelStats) -> Distill:
    teacher, origin = load_teacher(config.distill, stats, config.data.image_size, backbone.in_chans)
    return Distill(backbone, config.distill, teacher, origin)


RECORD = MethodRecord("distill", DistillConfig, _build)
