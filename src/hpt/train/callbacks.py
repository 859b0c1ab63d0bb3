"""Hooks into a run from Python, and what a run returns.

    class Watch(hpt.Callback):
        def on_step(self, step: hpt.StepEnd) -> None: ...            # after each step: its loss, learning rate
        def on_evaluation(self, evaluation: hpt.Evaluation) -> None: ...  # each monitor evaluation, step 0 included
        def on_checkpoint(self, checkpoint: hpt.Checkpointed) -> None: ...  # a checkpoint on disk
        def on_finish(self, result: hpt.RunSummary) -> None: ...       # the backbone exported

    hpt.pretrain(data="images/", out="runs/a", callbacks=[Watch()])

Each hook is called in the process that writes the run (rank 0 of several), after what it reports is written
(the metrics line, the checkpoint file, the exported backbone), in the order the callbacks were given. A hook that
raises stops the run as any error does: the last checkpoint stays for `--resume`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hpt.checkpoints.provenance import FileProvenance, read_record
from hpt.core.run_files import BACKBONE
from hpt.eval.uncertainty import Difference, with_error_bars


@dataclass(frozen=True)
class StepEnd:
    step: int
    """Steps done (1 after the first)."""
    steps: int
    """The run's `train.steps`."""
    loss: float
    """This step's loss, averaged over the processes."""
    lr: float


@dataclass(frozen=True)
class Evaluation:
    step: int
    """The step evaluated (0: the starting point as it is)."""
    scores: dict[str, float]
    """The monitor's scores as `metrics.jsonl` records them: label-free (`rankme`, ...) and, with labelled splits,
    each accuracy with its standard error (`NAME_se`) and the validation scores the pick reads (`*_val_*`)."""

    def described(self) -> str:
        """Each score beside its standard error and 95% interval: what the console prints."""
        return with_error_bars(self.scores)


@dataclass(frozen=True)
class Checkpointed:
    step: int
    path: Path
    """The run's `checkpoint.safetensors`: what `--resume` continues from."""


@dataclass(frozen=True)
class RunSummary:
    """What a run returns: its files, the step it exported and why, and how that step compares with its start."""

    run: Path
    steps: int
    final_loss: float
    wall_time_s: float
    backbone: Path | None = None
    """`run/backbone.safetensors` (None where the process did not write it)."""
    picked_step: int | None = None
    """The step whose weights `backbone` holds: the last, or the monitor's pick on validation (`picked_by`)."""
    picked_by: str = "last"
    scores: dict[str, float] | None = None
    """The picked evaluation's scores (its test accuracies with their standard errors), where it was picked by one."""
    compared: dict[str, Difference] | None = None
    """The exported step against `step_0` (the starting point) and the `last` step on the monitor's test images,
    image by image (exact McNemar, 95% interval), those that differ from it; None without labelled splits."""

    @classmethod
    def of(cls, run: Path, steps: int, final_loss: float, wall_time_s: float) -> RunSummary:
        """Read from the run's exported backbone record (what the finish wrote), when there is one."""
        record = read_record(run / BACKBONE) if (run / BACKBONE).is_file() else None
        selected = (record or FileProvenance(None)).selected
        if record is None or selected is None:
            return cls(run, steps, final_loss, wall_time_s)
        compared = (
            {name: Difference.from_dict(record) for name, record in selected.compared.named()}
            if selected.compared
            else None
        )
        picked = (run / BACKBONE, selected.step, selected.by, selected.scores, compared)
        return cls(run, steps, final_loss, wall_time_s, *picked)

    def verdict(self) -> str:
        """The exported step against the starting point in words, with its interval, or why there is none."""
        if self.compared is None:
            return "not compared with its start: no labelled monitor splits (--monitor-train, --monitor-test)"
        if "step_0" in self.compared:
            return f"step {self.picked_step} against the start: {self.compared['step_0'].words()}"
        last = f"; it against the last step: {self.compared['last'].words()}" if "last" in self.compared else ""
        return f"the starting point itself was exported (no later step beat it on validation){last}"


class Callback:
    """Subclass and override the hooks you need; each does nothing by default."""

    def on_step(self, step: StepEnd) -> None:
        """After each optimisation step."""

    def on_evaluation(self, evaluation: Evaluation) -> None:
        """After each evaluation of the monitor (written to `metrics.jsonl`)."""

    def on_checkpoint(self, checkpoint: Checkpointed) -> None:
        """After a checkpoint is written (every `train.checkpoint_every` steps, on a stop, at the end)."""

    def on_finish(self, result: RunSummary) -> None:
        """After the backbone is exported."""


@dataclass(frozen=True)
class Callbacks:
    """A run's callbacks, called only where `enabled` (the process that writes)."""

    callbacks: Sequence[Callback] = ()
    enabled: bool = True

    def step(self, step: StepEnd) -> None:
        for callback in self._active():
            callback.on_step(step)

    def evaluation(self, evaluation: Evaluation) -> None:
        for callback in self._active():
            callback.on_evaluation(evaluation)

    def checkpoint(self, checkpoint: Checkpointed) -> None:
        for callback in self._active():
            callback.on_checkpoint(checkpoint)

    def finish(self, result: RunSummary) -> None:
        for callback in self._active():
            callback.on_finish(result)

    def _active(self) -> Sequence[Callback]:
        return self.callbacks if self.enabled else ()
