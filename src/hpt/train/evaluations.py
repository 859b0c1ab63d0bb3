"""The run's evaluations: the monitor at step 0, every `monitor.every` steps and at the end, each logged to
`metrics.jsonl` with its time (`eval_s`), the best kept (`best.py`), each test image's outcome kept
(`monitor_outcomes.json`) for the finish's paired comparisons, and the backbone handed back to training as it was."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Compared
from hpt.core.atomic import write_text_atomic
from hpt.core.distributed import broadcast_from_first
from hpt.core.run_files import MONITOR_OUTCOMES
from hpt.errors import HptError
from hpt.eval.monitor import FEATURE_RANK, LabelledMonitor, Monitor
from hpt.eval.uncertainty import pack, paired_difference, unpack, with_error_bars
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
        self.seconds = 0.0
        """Time spent evaluating so far in this attempt: the training's throughput leaves it out."""
        if self.labelled is not None and self.metrics.enabled and (run / MONITOR_OUTCOMES).is_file():
            self._read_outcomes(self.labelled)  # a resume: the earlier attempt's outcomes, step 0's included

    @property
    def labelled(self) -> LabelledMonitor | None:
        return getattr(self.monitor, "labelled", None)

    @property
    def selects_by(self) -> str | None:
        return self.monitor.selects_by if self.monitor else None

    def __call__(self, provenance: Provenance) -> dict[str, float] | None:
        """Evaluate the backbone as it is after `provenance.steps` steps; its scores (None without a monitor)."""
        if self.monitor is None:
            return None
        done = provenance.steps
        if not all_finite(self.method.parameters()):
            if done == 0:  # nothing trained yet: the starting point came so, not a learning rate
                raise HptError("the starting point's weights are not finite (NaN or inf) before any training")
            raise unhealthy("the weights became non-finite", done, self.run)
        started = time.perf_counter()
        broadcast_from_first(list(self.backbone.buffers()))  # BatchNorm statistics: those rank 0 saves
        scores = self.monitor(self.backbone, self.device, done)
        if done == 0:
            self._check_starting_point(scores)
        seconds = time.perf_counter() - started
        self.seconds += seconds
        self.metrics.write({"step": done, "monitor": self.selects_by or "unlabelled", **scores, "eval_s": seconds})
        self._write_outcomes()
        validation = self.labelled.validation_outcomes if self.labelled is not None else None
        kept = self.best is not None and self.best.offer(done, scores, self.backbone, provenance.record(), validation)
        say(self.console, f"step {done}: " + with_error_bars(scores) + (self._kept_note() if kept and done > 0 else ""))
        self.hold_statistics()  # the evaluation put the backbone back in train mode
        return scores

    def _kept_note(self) -> str:
        leader = self.best.best.leader if self.best is not None and self.best.best is not None else None
        if leader is None:
            return "  (best so far)"
        return f"  (kept: its validation images cannot tell it from step {leader})"

    def comparisons(self, picked: int, last: int) -> Compared | None:
        """The test score of the picked step against step 0 (the starting point) and the last step, image by
        image (paired, `uncertainty.py`); None without a labelled monitor or the picked step's outcomes."""
        labelled = self.labelled
        if labelled is None or picked not in labelled.outcomes:
            return None
        outcomes = labelled.outcomes

        def against(other: int) -> dict[str, Any] | None:
            if other == picked or other not in outcomes:
                return None
            return paired_difference(outcomes[picked], outcomes[other]).to_dict()

        return Compared(labelled.reports, step_0=against(0), last=against(last))

    def _write_outcomes(self) -> None:
        labelled = self.labelled
        if labelled is None or not self.metrics.enabled or not labelled.outcomes:
            return
        record = _packed(labelled.reports, labelled.outcomes)
        if labelled.validation_outcomes:  # the images that pick: what tells two steps apart (`best.py`)
            record["validation"] = _packed(labelled.selects_by, labelled.validation_outcomes)
        write_text_atomic(self.run / MONITOR_OUTCOMES, json.dumps(record) + "\n")

    def _read_outcomes(self, labelled: LabelledMonitor) -> None:
        """The outcomes of the steps before a resume (those after its checkpoint are recomputed)."""
        try:
            record = json.loads((self.run / MONITOR_OUTCOMES).read_text())
            if record.get("score") == labelled.reports:
                labelled.outcomes.update(_unpacked(record))
            validation = record.get("validation") or {}
            if validation.get("score") == labelled.selects_by:
                labelled.validation_outcomes.update(_unpacked(validation))
        except (ValueError, KeyError, TypeError, AttributeError):  # cut off or of another monitor: said at the end
            labelled.outcomes.clear()
            labelled.validation_outcomes.clear()

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


def _packed(score: str, outcomes: dict[int, torch.Tensor]) -> dict[str, Any]:
    """Per step, each image's outcome by `score`, packed (`uncertainty.pack`)."""
    images = len(next(iter(outcomes.values())))
    return {"score": score, "images": images, "steps": {str(s): pack(c) for s, c in sorted(outcomes.items())}}


def _unpacked(record: dict[str, Any]) -> dict[int, torch.Tensor]:
    return {int(step): unpack(text, int(record["images"])) for step, text in record["steps"].items()}
