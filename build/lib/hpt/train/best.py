"""The backbone a run's monitor picks, step 0 (the starting point) included.

Kept in `RUN/best.safetensors` (native keys, like `backbone.safetensors`) and exported by default, so that a
run that made its base worse hands back the better weights it had, and says so.

Which step (`monitor.pick`): `highest`, the default, keeps the first step with the highest validation score
(an evaluation must beat the best so far to replace it). `latest-tied` keeps the step with the highest score
so far (the leader) unless a later step's validation images cannot tell it from the leader: each evaluation's
per-image validation outcomes are compared with the leader's (exact McNemar, `eval/uncertainty.py`), and a later
step is kept, replacing the one kept before, unless it is worse with a 95% interval that excludes 0; the starting
point then comes back only when every later step scored worse beyond the validation split's noise. On 32
validation images a step 0 at 65.6% and a last step at 53.1% are noise (4 images), and that last step was 2.8
points better on 600 test images. But a few dozen validation images rarely show a step worse, so where training
hurts the base `latest-tied` hands back the hurt weights: measured in `benchmarks/pick_noise.py` (the config
key's docstring has the numbers), which is why `highest` is the default. Without per-image outcomes (a label-free
pick, or a resume of a run from 0.7 and before) the `highest` rule applies.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from hpt.backbones import Backbone
from hpt.checkpoints.files import read_tensors, save_tensors
from hpt.checkpoints.provenance import BACKBONE_FORMAT, FileProvenance, Selected, read_record
from hpt.eval.uncertainty import paired_difference


class BestBackbone:
    def __init__(self, path: Path, score: str, resumed_at: int | None, latest_tied: bool = False) -> None:
        self.path, self.score, self.latest_tied = path, score, latest_tied
        self.best: Selected | None = None
        """The step kept."""
        self.leader: tuple[int, float] | None = None
        """The step with the highest score so far, and its score."""
        if resumed_at is not None and path.is_file():
            record = read_record(path)
            kept = record.selected if record else None
            if kept and kept.step <= resumed_at:  # one from after the checkpoint is recomputed, not trusted
                self.best = kept
                if kept.leader is not None and kept.leader_value is not None:
                    self.leader = (kept.leader, kept.leader_value)
                elif kept.value is not None:
                    self.leader = (kept.step, kept.value)

    def offer(
        self,
        step: int,
        scores: dict[str, float],
        backbone: Backbone,
        provenance: FileProvenance,
        validation: dict[int, torch.Tensor] | None = None,
    ) -> bool:
        """Keep `backbone` if its `scores` lead, or if its per-image `validation` outcomes (by step) cannot tell
        it from the leader's; True when it is kept."""
        value = scores[self.score]
        leader_step, leader_value = self.leader if self.leader is not None else (None, -math.inf)
        tied = None
        if self.best is None or value > leader_value:
            self.leader = (step, value)
        elif self.latest_tied and validation and step in validation and leader_step in validation:
            difference = paired_difference(validation[step], validation[leader_step])
            if difference.verdict == "worse":
                return False
            tied = difference.to_dict()
        else:
            return False
        self.best = Selected(step, self.score, value, scores, tied=tied)
        if tied is not None:  # kept behind the leader, whose step and score say why
            self.best = replace(self.best, leader=leader_step, leader_value=leader_value)
        record = replace(provenance, format=BACKBONE_FORMAT, selected=self.best)
        save_tensors(self.path, backbone.native_state_dict(), record.to_dict())
        return True

    def tensors(self) -> dict[str, torch.Tensor]:
        return read_tensors(self.path)[0]
