"""SEED's distillation loss: the student's similarity distribution over a set of instances matches the teacher's.

Fang et al., ICLR 2021, "SEED: Self-supervised Distillation for Visual Representation", Eq. (3)-(4): for a view
with student embedding s and teacher embedding t (both L2-normalised) and a queue of past teacher embeddings
d_1..d_K, the teacher's scores p^T = softmax([t.t, t.d_1, ..., t.d_K] / tau_T) are the targets of the student's
p^S = softmax([s.t, s.d_1, ..., s.d_K] / tau_S), by cross-entropy: L = -sum_j p^T_j log p^S_j.
"""

from __future__ import annotations

import torch


def seed_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    queue: torch.Tensor,
    student_temperature: float,
    teacher_temperature: float,
) -> torch.Tensor:
    """Mean over the batch of SEED's cross-entropy.

    student, teacher: N x C, L2-normalised (`teacher` carries no gradient);
    queue: C x K past teacher embeddings (K may be 0: the first step), not modified in place before backward.

    Computed in float32 whatever the autocast: at SEED's teacher temperature (1e-4) a bfloat16 similarity's
    rounding (~4e-3) would move a logit by ~40.
    """
    with torch.autocast(student.device.type, enabled=False):
        student, teacher, queue = student.float(), teacher.float(), queue.float()
        own = (teacher * teacher).sum(dim=1, keepdim=True)  # N x 1: 1 up to rounding, as SEED computes it
        teacher_logits = torch.cat([own, teacher @ queue], dim=1) / teacher_temperature
        student_logits = torch.cat([(student * teacher).sum(dim=1, keepdim=True), student @ queue], dim=1)
        targets = teacher_logits.softmax(dim=1)
        return -(targets * (student_logits / student_temperature).log_softmax(dim=1)).sum(dim=1).mean()
