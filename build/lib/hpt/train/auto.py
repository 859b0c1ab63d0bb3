"""`hpt pretrain --auto`: short pilots of a few recipes, ranked by the monitor, then the winner's full run.

Which recipe helps depends on the base, the target and the budget (HPT, Reed et al. 2022, Sec. 5: full
continued pretraining for large targets, HPT-BN for small ones; a learning rate that suits training from
scratch can undo a good base). `--auto` measures instead of guessing: every recipe in `auto.recipes` runs
`auto.pilot_steps` steps in `RUN/pilots/NAME`, each is scored at its end by the run's monitor (kNN when
labelled monitor splits are given, required unless `monitor.label_free_pick` asks for view retrieval),
and the best recipe runs the whole budget in `RUN` (a tie goes to the recipe listed first). The pilots'
scores and the choice are printed and kept in `RUN/auto.json`; the full run's config records the recipe.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from hpt.config import PretrainConfig, set_dotted, validate_config
from hpt.core.atomic import write_text_atomic
from hpt.core.distributed import is_first_process
from hpt.core.run_files import AUTO, CONFIG, earlier_attempt, read_monitor
from hpt.errors import HptError
from hpt.train.console import BOLD, say
from hpt.train.loop import RunSummary, pretrain
from hpt.train.run_dir import check_run_dir, is_finished

AUTO_FILE, PILOTS = AUTO


@dataclass(frozen=True)
class Recipe:
    init: str
    lr_factor: float
    """Times the run's learning rate (`optim.lr`, or the method's own)."""


RECIPES: dict[str, Recipe] = {
    "bn-only": Recipe("bn-only", 1.0),
    "full": Recipe("full", 1.0),
    "full-lr/10": Recipe("full", 0.1),
}


def check_recipes(names: list[str]) -> None:
    unknown = [name for name in names if name not in RECIPES]
    if unknown or not names:
        raise HptError(
            f"auto.recipes: {unknown[0] if unknown else 'an empty list'} is not a recipe; expected some "
            f"of {', '.join(RECIPES)}"
        )


def recipe_config(config: PretrainConfig, recipe: Recipe, steps: int | None = None) -> PretrainConfig:
    raw = config.to_dict()
    set_dotted(raw, "model.init", recipe.init)
    set_dotted(raw, "optim.lr", config.learning_rate * recipe.lr_factor)
    if steps is not None:
        set_dotted(raw, "train.steps", steps)
        set_dotted(raw, "monitor.every", 0)  # a pilot is scored at its start and its end
    return validate_config(raw)


def pretrain_auto(
    config: PretrainConfig, out: Path, overwrite: bool = False, resume: bool = False, console: Console | None = None
) -> RunSummary:
    console = console or Console(stderr=True, log_path=False, quiet=not is_first_process())
    if config.model.base is None:
        raise HptError("--auto compares ways of continuing from a base: give one with --base")
    check_recipes(config.auto.recipes)
    if config.monitor.train is None and not config.monitor.label_free_pick:
        raise HptError(
            "--auto ranks its pilots by the labelled monitor: give --monitor-train and --monitor-test (a few "
            "dozen labelled images per class); no label-free score picked reliably on the benchmark targets "
            "(set monitor.label_free_pick=true to rank by view retrieval anyway)"
        )
    earlier_attempt(out, overwrite, resume)  # an occupied folder, a folder not hpt's, nothing to resume: refused
    if overwrite and not resume and is_first_process():  # the other processes of a DDP run find it done
        shutil.rmtree(out / PILOTS, ignore_errors=True)
    pilot_steps = config.auto.pilot_steps or max(10, config.train.steps // 10)

    pilots = []
    for name in config.auto.recipes:
        folder = out / PILOTS / name.replace("/", "_")
        pilot = recipe_config(config, RECIPES[name], pilot_steps)
        if is_finished(folder):
            check_run_dir(folder, pilot, overwrite=False, resume=True)  # a finished pilot of another config: refused
        else:
            say(console, ("auto", BOLD), f": pilot '{name}' ({pilot_steps} steps) -> {folder}")
            pretrain(
                pilot, folder, overwrite=not resume, resume=resume and (folder / CONFIG).is_file(), console=console
            )
        pilots.append(_score(name, folder))
    by = pilots[0]["by"]
    chosen = max(pilots, key=lambda p: p["end"])  # the first listed wins a tie
    for p in pilots:
        say(
            console,
            f"auto: {p['recipe']:<11} {by} {p['start']:.4f} at step 0 -> {p['end']:.4f} at step {pilot_steps}"
            + ("  " if p is chosen else ""),
            ("chosen" if p is chosen else "", BOLD),
        )
    if is_first_process():
        write_text_atomic(
            out / AUTO_FILE,
            json.dumps({"pilot_steps": pilot_steps, "by": by, "pilots": pilots, "chosen": chosen["recipe"]}, indent=2)
            + "\n",
        )
    final = recipe_config(config, RECIPES[chosen["recipe"]])
    continuing = resume and (out / CONFIG).is_file()
    return pretrain(final, out, overwrite=not continuing, resume=continuing, console=console)


def _score(name: str, folder: Path) -> dict[str, Any]:
    evaluations = read_monitor(folder)
    if len(evaluations) < 2:
        raise HptError(
            f"--auto: pilot '{name}' has no monitor scores; give monitor.train and monitor.test, or "
            "keep monitor.label_free_sample above 0 with enough images"
        )
    by = evaluations[-1]["monitor"]
    return {"recipe": name, "by": by, "start": evaluations[0][by], "end": evaluations[-1][by], "run": str(folder)}
