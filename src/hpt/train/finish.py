"""Phase 4 of a run, the finish: HPT-BN re-estimates the BatchNorm statistics on the target, the last
evaluation and checkpoint, then the export of the backbone the monitor selected (the last step's without one)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from lightning_fabric import Fabric
from rich.console import Console

from hpt.checkpoints.files import save_tensors, sha256_file
from hpt.checkpoints.provenance import AGAINST, BACKBONE_FORMAT, Compared, Parent, Selected
from hpt.core.interrupt import Interrupted
from hpt.core.run_files import BACKBONE, CHECKPOINT, read_monitor
from hpt.eval.uncertainty import SE, Difference, score_text
from hpt.export.hub import write_hub_files
from hpt.train.build import Training
from hpt.train.callbacks import Checkpointed
from hpt.train.checkpoint import save_checkpoint
from hpt.train.console import WARNING, say
from hpt.train.guard import Stopped
from hpt.train.loggers import close
from hpt.train.plan import Plan
from hpt.train.steps import Ended, evaluate_or_stop, keep_step
from hpt.transfer import reestimate_batch_norm


def finish(fabric: Fabric, plan: Plan, training: Training, ended: Ended) -> float:
    """Returns the run's wall time, the finish included."""
    t, config, done, console = training, plan.config, ended.steps, training.console
    run = t.evaluations.run
    if plan.strategy.reestimate_batch_norm and config.transfer.reestimate_batch_norm and not plan.freeze_statistics:
        try:
            seen = reestimate_batch_norm(t.backbone, plan.target_sample(), fabric.device)
        except Interrupted as stop:  # the weights are the last step's; a resume re-estimates from a reset
            keep_step(fabric, t, done, ended.clock())
            raise Stopped(stop.received, done, run, speaks=t.writes) from None
        t.provenance = replace(
            t.provenance, adaptations={**t.provenance.adaptations, "batch_norm_reestimated_on": seen}
        )
    evaluate_or_stop(fabric, t, done, ended.clock())
    wall_time = ended.clock()
    provenance = t.provenance.at(done, wall_time).record()
    save_checkpoint(run, t.method, t.optimizer, provenance, t.writes, t.data_state(fabric))
    t.callbacks.checkpoint(Checkpointed(done, run / CHECKPOINT))
    close(t.metrics.loggers)
    if not t.writes:
        fabric.barrier()  # rank 0 exports
        return wall_time
    parent = Parent(str((run / CHECKPOINT).resolve()), sha256_file(run / CHECKPOINT))
    evaluations, best = read_monitor(run), t.evaluations.best
    exported = t.backbone.native_state_dict()
    selected = Selected(done, "last")
    if best is not None and best.best is not None and config.monitor.export == "best":
        exported, selected = best.tensors(), best.best
        labelled = t.evaluations.labelled
        by_noise = config.monitor.pick == "latest-tied" and bool(labelled and labelled.validation_outcomes)
        _say_what_was_selected(console, selected, evaluations, done, by_noise)
    elif best is None and t.provenance.origin.spec and done > 0:
        say(
            console,
            ("note", WARNING),
            ": without labelled monitor splits hpt cannot tell whether this backbone beats its "
            "starting point (no label-free score told it reliably on the benchmark targets: "
            "benchmarks/results/label_free); give --monitor-train and --monitor-test to keep the best",
        )
    if compared := t.evaluations.comparisons(selected.step, done):
        selected = replace(selected, compared=compared)
        _say_how_it_compares(console, selected.step, compared, evaluations)
    record = replace(provenance, format=BACKBONE_FORMAT, parent=parent, selected=selected, monitor=evaluations)
    save_tensors(run / BACKBONE, exported, record.to_dict())
    write_hub_files(run, t.backbone.num_features)  # config.json, model.safetensors, README.md
    say(
        console,
        f"done: {done} steps in {wall_time:.1f}s, final loss {ended.last_loss:.4f}; backbone of step "
        f"{selected.step} -> {run / BACKBONE} (with config.json and a model card for timm and model hubs)",
    )
    fabric.barrier()
    return wall_time


def _say_what_was_selected(
    console: Console, selected: Selected, evaluations: list[dict[str, Any]], done: int, by_noise: bool
) -> None:
    """Which step is exported and why; `by_noise`: steps were told apart by their validation outcomes."""
    by, at_end = selected.by, next((e for e in reversed(evaluations) if e["step"] == done), None)
    end = f"{at_end[by]:.4f} at the end" if at_end else "the end not evaluated"
    value = selected.value if selected.value is not None else math.nan
    if selected.step == 0 and done > 0:
        why = (
            "every later evaluation scored worse than the starting point on the validation images, beyond their "
            "noise (exact McNemar, 95%)"
            if by_noise
            else "no evaluation beat the starting point"
        )
        say(
            console,
            ("warning", WARNING),
            f": {why} by {by} ({value:.4f} at step 0, {end}); backbone.safetensors holds the starting point "
            "(monitor.export=last: the last step)",
        )
    elif selected.leader is not None and selected.tied is not None:
        tied = Difference.from_dict(selected.tied).words()
        say(
            console,
            f"backbone.safetensors holds step {selected.step}, the latest step whose validation images cannot tell "
            f"it from the best by {by} (step {selected.leader}, {selected.leader_value:.4f}; step {selected.step} "
            f"against it: {tied}; {end})",
        )
    elif selected.step != done:
        say(
            console,
            f"backbone.safetensors holds step {selected.step}, the best by {by} ({value:.4f}; {end}), "
            "picked on validation images",
        )


def _say_how_it_compares(console: Console, picked: int, compared: Compared, evaluations: list[dict[str, Any]]) -> None:
    """The exported step's test score with its standard error, against step 0 and the last step, paired."""
    score = compared.score
    at = {e["step"]: e for e in evaluations}
    if picked not in at or score not in at[picked]:
        return
    mine = at[picked]
    said = f"on monitor.test, step {picked} scores {score} {score_text(mine, score)}" + (
        " (± one standard error)" if score + SE in mine else ""
    )
    for name, difference in compared.named():
        said += f"; against {AGAINST[name]}: {Difference.from_dict(difference).words()}"
    say(console, said)
