"""The run's evaluations: the monitor at step 0, every `monitor.every` steps and at the end, each logged to
`metrics.jsonl`, the best kept (`best.py`), and the backbone handed back to training as it was."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from rich.console import Console

from hpt.backbones import Backbone
from hpt.core.distributed import broadcast_from_first
from hpt.errors import HptError
from hpt.eval.monitor import FEATURE_RANK, Monitor
from hpt.methods import SSLMethod
from hpt.train.best import BestBackbone
from hpt.train.checkpoint import unhealthy
from hpt.train.console import say
from hpt.train.health import all_finite
from hpt.train.provenance import Provenance
from hpt.train.run_dir import MetricsLog
from hpt.transfer.frozen_statistics import hold_batch_norm_statistics


class Evaluations:
    def __init__(
        self,
        monitor: Monitor | None,
        method: SSLMethod,
        backbone: Backbone,
        run: Path,
        metrics: MetricsLog,
        best: BestBackbone | None,
        freeze_statistics: bool,
        device: torch.device,
        console: Console,
    ) -> None:
        self.monitor, self.method, self.backbone, self.run = monitor, method, backbone, run
        self.metrics, self.best, self.freeze_statistics = metrics, best, freeze_statistics
        self.device, self.console = device, console

    @property
    def selects_by(self) -> str | None:
        return self.monitor.selects_by if self.monitor else None

    def __call__(self, provenance: Provenance) -> None:
        """Evaluate the backbone as it is after `provenance.steps` steps (nothing when there is no monitor)."""
        if self.monitor is None:
            return
        done = provenance.steps
        if not all_finite(self.method.parameters()):
            if done == 0:  # nothing trained yet: the starting point came so, not a learning rate
                raise HptError("the starting point's weights are not finite (NaN or inf) before any training")
            raise unhealthy("the weights became non-finite", done, self.run)
        broadcast_from_first(list(self.backbone.buffers()))  # BatchNorm statistics: those rank 0 saves
        scores = self.monitor(self.backbone, self.device, done)
        if done == 0:
            self._check_starting_point(scores)
        self.metrics.write({"step": done, "monitor": self.selects_by or "unlabelled", **scores})
        kept = self.best is not None and self.best.offer(done, scores, self.backbone, provenance.to_dict())
        say(
            self.console,
            f"step {done}: "
            + "  ".join(f"{name} {value:.4f}" for name, value in scores.items())
            + ("  (best so far)" if kept and done > 0 else ""),
        )
        self.hold_statistics()  # the evaluation put the backbone back in train mode

    def _check_starting_point(self, scores: dict[str, float]) -> None:
        """A score that is NaN before any training (features of NaN, or of a base that gives NaN on this data)
        would stay NaN: the run stops here instead of training on."""
        watched = [name for name in (self.selects_by, FEATURE_RANK) if name in scores]
        if bad := [name for name in watched if not math.isfinite(scores[name])]:
            raise HptError(
                f"the monitor's {' and '.join(bad)} is {scores[bad[0]]} at step 0, before any training: the "
                "starting point's features of these images are not finite (NaN pixels, or a base that breaks on "
                "this data); nothing was trained"
            )

    def hold_statistics(self) -> None:
        """With frozen BatchNorm statistics (`transfer.freeze_bn_statistics`), keep the backbone's BN in eval mode."""
        if self.freeze_statistics:
            hold_batch_norm_statistics(self.method)
