"""One training run: any method, any initialisation, counted in steps, on Lightning Fabric.

Four phases, one module each: the plan (`plan.py`: every input resolved and checked before a process is
started or a file written), the build (`build.py`: backbone, method, data, optimiser, the same on every
process), the steps (`steps.py`) and the finish (`finish.py`: re-estimation, last evaluation, export). It runs
on a laptop CPU without a process group; Fabric carries the same code to a GPU and to DDP over several
(`launch.py`), where rank 0 alone writes files, holding the run folder's lock, and a stop signal ends the
run cleanly after a step (`guard.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from hpt.checkpoints.provenance import FileProvenance, read_record
from hpt.config import PretrainConfig
from hpt.core.interrupt import interruptible
from hpt.core.run_files import BACKBONE, read_metrics
from hpt.methods import METHODS
from hpt.train.build import build
from hpt.train.callbacks import Callback, Callbacks, RunSummary
from hpt.train.console import close_log, say
from hpt.train.finish import finish
from hpt.train.guard import RunLock, StopRequests
from hpt.train.launch import concrete_settings, make_fabric, processes_stopped_on_failure
from hpt.train.plan import plan_run
from hpt.train.run_dir import check_run_dir, is_finished
from hpt.train.steps import run_steps


def pretrain(
    config: PretrainConfig,
    out: Path,
    overwrite: bool = False,
    resume: bool = False,
    console: Console | None = None,
    allow_data_change: bool = False,
    allow_modified: bool = False,
    callbacks: Sequence[Callback] = (),
) -> RunSummary:
    """One run of `config` into the run folder `out`, as `hpt pretrain` does (see docs/run-folder.md).

    Args:
        config: from `load_config`; `data.path` must be set.
        out: the run folder; one that holds files needs `overwrite` (start again) or `resume`.
        resume: continue the folder's earlier attempt of the same config from its last checkpoint (a finished
            run is said to be finished and left as it is).
        console: where the run's lines go (default: standard error).
        allow_data_change: with `resume`, continue even if the data changed since (recorded in the provenance).
        allow_modified: use a base, teacher or checkpoint modified since hpt wrote it (recorded in the provenance).
        callbacks: hooks called after each step, evaluation, checkpoint and at the finish (`train/callbacks.py`).

    Returns:
        A `RunSummary`: folder, steps, final loss, wall time, the exported backbone, the step picked and its
        scores, and that step against step 0 (`verdict()`).

    Example::

        from pathlib import Path
        from hpt import load_config, pretrain
        config = load_config(None, {"data.path": "images/", "model.base": "timm:resnet50"})
        summary = pretrain(config, Path("runs/first"))
        print(summary.steps, summary.run / "backbone.safetensors")
    """
    config = concrete_settings(config)  # recorded as chosen: config.yaml says what the run ran with
    if resume and not overwrite and is_finished(out):
        check_run_dir(out, config, overwrite, resume)  # the same config, or the difference named
        return _finished(out, console or Console(stderr=True, log_path=False))
    fabric = make_fabric(config.train, unused_parameters=METHODS[config.method].unused_parameters)
    with processes_stopped_on_failure(fabric):
        plan = plan_run(config, out, overwrite, resume, allow_data_change, allow_modified)
        if fabric.global_rank != 0:
            console = Console(stderr=True, quiet=True)  # every process computes; one speaks and writes
        with RunLock(out, enabled=fabric.global_rank == 0) as lock, StopRequests(config.train.stop_signals) as stops:
            fabric.launch()  # from here on every process runs the same code on its slice of each batch
            console = console or Console(stderr=True, log_path=False)
            try:
                training = build(fabric, plan, console, lock)
                training.callbacks = Callbacks(callbacks, enabled=training.writes)
                with interruptible(lambda: stops.received, enabled=fabric.world_size == 1):
                    ended = run_steps(fabric, config, training, stops)
                    wall_time = finish(fabric, plan, training, ended)
            except BaseException as exc:
                close_log(console, ended_by=exc)
                raise
            close_log(console)
        summary = RunSummary.of(out, ended.steps, ended.last_loss, wall_time)
        training.callbacks.finish(summary)
        return summary


def _finished(out: Path, console: Console) -> RunSummary:
    """`--resume` of a run that has finished: said, and nothing touched (its files, times and exports stay)."""
    provenance = read_record(out / BACKBONE) or FileProvenance(None)
    steps, wall_time = provenance.steps, provenance.wall_time_s
    losses = [record["loss"] for record in read_metrics(out) if "loss" in record]
    say(console, f"'{out}' is finished ({steps} steps, {out / BACKBONE}); nothing to resume")
    return RunSummary.of(out, steps, losses[-1] if losses else float("nan"), wall_time)
