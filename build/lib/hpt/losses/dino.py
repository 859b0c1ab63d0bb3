"""DINO's self-distillation loss and its centring.

Caron et al., ICCV 2021, "Emerging Properties in Self-Supervised Vision Transformers" (Algorithm 1): the
teacher's outputs of the global crops are centred (minus a running mean c) and sharpened (softmax at a low
temperature); each student crop's softmax at a higher temperature is trained towards every teacher crop but
its own, by cross-entropy. c follows the teacher's batch mean over the global batch with momentum m:
c <- m c + (1 - m) mean(teacher outputs). Centring keeps one dimension from dominating, sharpening keeps the
outputs from going uniform: together they avoid collapse without negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hpt.core.distributed import all_reduce_sum, world_size


@torch.no_grad()
def teacher_targets(teacher: list[torch.Tensor], centre: torch.Tensor, temperature: float) -> list[torch.Tensor]:
    """Each global crop's teacher output (B x K logits), centred and sharpened into probabilities."""
    return [F.softmax((logits.float() - centre) / temperature, dim=1) for logits in teacher]


def dino_loss(student: list[torch.Tensor], targets: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """`student[v]`: B x K logits of crop v; `targets[i]`: B x K teacher probabilities of global crop i (crop i of
    `student` too). The mean over pairs (i, v), v != i, of -sum(targets[i] * log softmax(student[v] / T))."""
    log_probabilities = [F.log_softmax(logits.float() / temperature, dim=1) for logits in student]  # once a crop
    total, pairs = student[0].new_zeros((), dtype=torch.float32), 0
    for i, target in enumerate(targets):
        for v, log_probability in enumerate(log_probabilities):
            if v == i:
                continue
            total = total - (target * log_probability).sum(dim=1).mean()
            pairs += 1
    return total / pairs


@torch.no_grad()
def updated_centre(centre: torch.Tensor, teacher: torch.Tensor, momentum: float) -> torch.Tensor:
    """The new centre (1 x K): `momentum` of the old plus the rest of the mean of the teacher's outputs (N x K, every
    global crop of the batch) over the global batch (every process's, as DINO's all-reduce)."""
    outputs = teacher.float()
    batch_sum = all_reduce_sum(outputs.sum(dim=0, keepdim=True))
    return centre * momentum + batch_sum / (outputs.shape[0] * world_size()) * (1 - momentum)
