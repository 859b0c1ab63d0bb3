"""The files of a run folder, by name, and the reading of its `metrics.jsonl`: written by `train/`, read by
`checkpoints/`, `pipeline/`, `report/` and the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpt.errors import HptError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.safetensors"
BACKBONE = "backbone.safetensors"
"""The exported backbone: what a finished run is, and what a later stage or `hpt eval` loads from the folder."""
HUB_CONFIG = "config.json"
"""timm's model configuration, with the run's preprocessing (`export/timm_config.py`)."""
HUB_WEIGHTS = "model.safetensors"
"""The exported backbone under the name timm and model hubs load (a hard link to `BACKBONE`)."""
MODEL_CARD = "README.md"
EXPORTS = {"onnx": "backbone.onnx", "torchscript": "backbone.torchscript.pt"}
"""`hpt export RUN --format F`'s file in the run folder, by format."""
DATA_FINGERPRINT = "data.json"
"""The data the run trained on: each file's path, size and time, and a sample's sha256 (`data/fingerprint.py`)."""
SKIPPED = "skipped.jsonl"
"""The files of `--data` that were not used, with why: found unusable by screening, or by training when a
file changed after it (`data/screen.py`'s `read_skipped` reads it)."""
REFUSED = "skipped.refused.jsonl"
"""Every unusable file of a refused start (too many of them), with why, where the folder already holds a run
or a `skipped.jsonl` of its own; in an empty or new folder that list is `SKIPPED` itself."""
TRAIN_LOG = "train.log"
"""What the run's console said, appended across resumes (`train/console.py`)."""
VIEWS = "views.png"
"""Images beside two of their training views, drawn at the start (`train.view_grid`)."""
BEST = "best.safetensors"
MONITOR_OUTCOMES = "monitor_outcomes.json"
"""Per evaluated step, each monitor.test image's outcome (right or wrong, packed): the finish compares the pick
with step 0 and the last step image by image (`eval/uncertainty.py`), after a resume too."""
LOCK = ".lock"
"""Held by the process that writes the run (`train/guard.py`): one writer per folder."""
LOGGER_FILES = {"tensorboard": "tensorboard", "csv": "csv", "mlflow": "mlflow.db", "wandb": "wandb"}
"""What each of Lightning's loggers writes in the run folder (a folder, or MLflow's database: `train/loggers.py`)."""
EVAL = "eval.json"
"""`hpt eval RUN`'s record, beside the backbone it scored."""
AUTO = ("auto.json", "pilots")
"""`hpt pretrain --auto`'s choice and its pilots' run folders (`train/auto.py`)."""
AUTO_KEYS = ("pilot_steps", "pilots", "chosen")
"""What the choice of `hpt pretrain --auto` (`auto.json`) holds."""
SIDECARS = tuple(str(Path(name).with_suffix(".json")) for name in (CHECKPOINT, BACKBONE, BEST))
"""Provenance beside each tensor file (`checkpoints/files.py`'s `sidecar_path`: the same name, `.json`)."""
REPLACED = (
    CHECKPOINT, BACKBONE, BEST, *SIDECARS, METRICS, SKIPPED, REFUSED, HUB_CONFIG, HUB_WEIGHTS, MODEL_CARD, VIEWS,
    TRAIN_LOG, MONITOR_OUTCOMES, *EXPORTS.values(), EVAL, "skipped.txt", "eval.skipped.jsonl",
    *LOGGER_FILES.values(),
)  # fmt: skip
"""What a fresh start (`--overwrite`) removes from a run folder: what an earlier run wrote there would no longer be
true (`skipped.txt`: hpt 0.5's list). Nothing else in the folder is touched."""
HPT_KEYS = ("method", "model", "train")
"""Sections every config.yaml hpt writes holds: how a folder is known to be an hpt run's."""


def earlier_attempt(out: Path, overwrite: bool, resume: bool) -> bool:
    """Whether `out` holds an earlier attempt to continue (`--resume`); the rules that protect a user's work,
    without reading a config: a file is not a folder, a folder of files needs --overwrite or --resume, --resume
    needs a run's config.yaml, and --overwrite removes files only from a folder an hpt run owns (`is_hpt_run`).
    A folder holding only a refused start's `skipped.jsonl` is empty."""
    if out.exists() and not out.is_dir():
        raise HptError(f"--out '{out}' exists and is not a folder")
    if not (out.is_dir() and any(p.name not in (LOCK, SKIPPED) for p in out.iterdir())):
        if resume and not overwrite:
            raise HptError(
                f"--resume: '{out}' {'holds nothing' if out.is_dir() else 'does not exist'}: there is no run to "
                "continue; start it without --resume"
            )
        return False
    if overwrite:
        if not is_hpt_run(out) and (theirs := sorted(p.name for p in out.iterdir() if p.name in (*REPLACED, *AUTO))):
            raise HptError(
                f"--overwrite: '{out}' is not an hpt run (no {CONFIG} of one) and holds {', '.join(theirs)}, which "
                "a new run would replace; move them, or choose another --out"
            )
        return False
    if not resume:
        raise HptError(
            f"--out '{out}' already holds files; pass --overwrite to replace them, --resume to continue "
            "them, or choose another folder"
        )
    if not (out / CONFIG).is_file():
        raise HptError(f"--resume: '{out}' holds files but no {CONFIG}; it is not an hpt run")
    return True


def is_hpt_run(folder: Path) -> bool:
    """Whether `folder` holds an hpt run: a config.yaml whose mapping has the sections hpt writes (`HPT_KEYS`), or
    the choice of `hpt pretrain --auto` (its pilots ran, the final run has not started yet). Read as text, not
    parsed: another tool's file of any size is not loaded to be told apart."""
    config, auto = _head(folder / CONFIG), _head(folder / AUTO[0])
    lines = {line.split(":", 1)[0] for line in config.splitlines() if ":" in line and not line[:1].isspace()}
    return all(key in lines for key in HPT_KEYS) or all(f'"{key}"' in auto for key in AUTO_KEYS)


def _head(path: Path) -> str:
    try:
        with open(path) as f:
            return f.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return ""


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The training lines (step, loss, ...); the monitor's lines are `read_monitor`'s."""
    return [record for record in records(run / METRICS) if "monitor" not in record]


def read_monitor(run: Path) -> list[dict[str, Any]]:
    """The online monitor's lines: step and kNN accuracies, step 0 first."""
    return [record for record in records(run / METRICS) if "monitor" in record]


def records(metrics: Path) -> list[dict[str, Any]]:
    """Every JSON line of `metrics`, in order."""
    found = []
    for line in metrics.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # blank, or the last line of a run killed mid-write
    return found
