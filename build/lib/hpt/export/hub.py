"""The run folder as a model repository: `config.json` (timm), `model.safetensors` and the model card
`README.md`, beside `backbone.safetensors`. `model.safetensors` is the same file as `backbone.safetensors` (a
hard link: no second copy on disk) under the name timm and the Hugging Face hub look for; where the file
system has no hard links, it is a copy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hpt.checkpoints.lineage import describe
from hpt.checkpoints.provenance import read_record
from hpt.core.atomic import temporary_path, write_text_atomic
from hpt.core.run_files import BACKBONE, HUB_CONFIG, HUB_WEIGHTS, MODEL_CARD
from hpt.errors import HptError
from hpt.export.card import model_card
from hpt.export.timm_config import timm_config


def write_hub_files(run: Path, num_features: int) -> list[Path]:
    """Write the three files from `run`'s exported backbone and its provenance; returns their paths."""
    exported = run / BACKBONE
    provenance = read_record(exported)
    if provenance is None or not provenance.is_run:
        raise HptError(f"'{exported}' carries no hpt provenance: not a backbone hpt exported")
    write_text_atomic(run / HUB_CONFIG, json.dumps(timm_config(provenance, num_features), indent=2) + "\n")
    write_text_atomic(run / MODEL_CARD, model_card(provenance, describe(str(exported), public=True)))
    _link(exported, run / HUB_WEIGHTS)
    return [run / HUB_CONFIG, run / HUB_WEIGHTS, run / MODEL_CARD]


def _link(source: Path, name: Path) -> None:
    """`name` becomes `source`'s file (replaced, never half-written: linked or copied beside it, then renamed)."""
    if name.exists() and os.path.samefile(source, name):
        return  # already that file: renaming a link onto a link of the same file would leave the link behind
    tmp = temporary_path(name)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, name)
