"""The best backbone a run has seen by its monitor, step 0 (the starting point) included.

Kept in `RUN/best.safetensors` (native keys, like `backbone.safetensors`) and exported by default, so that a
run that made its base worse hands back the better weights it had, and says so. Ties go to the earlier step:
an evaluation must beat the best so far to replace it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hpt.backbones import Backbone
from hpt.checkpoints.files import read_provenance, read_tensors, save_tensors


class BestBackbone:
    def __init__(self, path: Path, score: str, resumed_at: int | None) -> None:
        self.path, self.score = path, score
        self.best: dict[str, Any] | None = None
        if resumed_at is not None and path.is_file():
            kept = (read_provenance(path) or {}).get("selected")
            if kept and kept["step"] <= resumed_at:  # one from after the checkpoint is recomputed, not trusted
                self.best = kept

    def offer(self, step: int, scores: dict[str, float], backbone: Backbone, provenance: dict[str, Any]) -> bool:
        """Keep `backbone` if its `scores` beat the best so far; True when they did."""
        value = scores[self.score]
        if self.best is not None and not value > self.best["value"]:
            return False
        self.best = {"step": step, "by": self.score, "value": value, "scores": scores}
        save_tensors(
            self.path, backbone.native_state_dict(), {**provenance, "format": "hpt-backbone", "selected": self.best}
        )
        return True

    def tensors(self) -> dict[str, torch.Tensor]:
        return read_tensors(self.path)[0]
