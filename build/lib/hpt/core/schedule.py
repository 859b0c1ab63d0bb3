"""Per-step schedules as arrays (after DINO's `cosine_scheduler`): learning rate, EMA momentum, ..."""

from __future__ import annotations

import numpy as np


def cosine_schedule(
    start: float, end: float, steps: int, warmup_steps: int = 0, warmup_start: float = 0.0, reach_end: bool = False
) -> np.ndarray:
    """`steps` values: linear warm-up from `warmup_start` towards `start`, then a half cosine from `start`
    towards `end`. Index i is the value for step i (0-based), as in DINO: the first cosine step uses
    `start`, and the value approaches `end` without a wasted final step at exactly `end` (a learning rate);
    `reach_end=True` makes the last step's value exactly `end` (BYOL's momentum, 0.996 -> 1)."""
    warmup_steps = min(warmup_steps, steps)
    warmup = np.linspace(warmup_start, start, warmup_steps, endpoint=False)
    remaining = steps - warmup_steps
    progress = np.arange(remaining) / max(remaining - 1 if reach_end else remaining, 1)
    cosine = end + 0.5 * (start - end) * (1 + np.cos(np.pi * progress))
    return np.concatenate([warmup, cosine])
