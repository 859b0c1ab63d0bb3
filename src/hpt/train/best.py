"""The best backbone a run has seen by its monitor, step 0 (the starting point) included.

Kept in `RUN/best.safetensors` (native keys, like `backbone.safetensors`) and exported by default, so that a
run that made its base worse hands back the better weights it had, and says so. Ties go to the earlier step:
an evaluation must beat the best so far to replace it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from hpt.backbones import Backbone
from hpt.checkpoints.files import read_tensors, save_tensors
from hpt.checkpoints.provenance import BACKBONE_FORMAT, FileProvenance, Selected, read_record


class BestBackbone:
    def __init__(self, path: Path, score: str, resumed_at: int | None) -> None:
        self.path, self.score = path, score
        self.best: Selected | None = None
        if resumed_at is not None and path.is_file():
            record = read_record(path)
            kept = record.selected if record else None
            if kept and kept.step <= resumed_at:  # one from after the checkpoint is recomputed, not trusted
                self.best = kept

    def offer(self, step: int, scores: dict[str, float], backbone: Backbone, provenance: FileProvenance) -> bool:
        """Keep `backbone` if its `scores` beat the best so far; True when they did."""
        value = scores[self.score]
        if self.best is not None and not value > (self.best.value if self.best.value is not None else -math.inf):
            return False
        self.best = Selected(step, self.score, value, scores)
        record = replace(provenance, format=BACKBONE_FORMAT, selected=self.best)
        save_tensors(self.path, backbone.native_state_dict(), record.to_dict())
        return True

    def tensors(self) -> dict[str, torch.Tensor]:
        return read_tensors(self.path)[0]
