"""A run folder: what `hpt pretrain` writes, and the rule that it never overwrites a user's work silently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpt.errors import HptError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.safetensors"
BACKBONE = "backbone.safetensors"


def prepare_run_dir(out: Path, overwrite: bool) -> Path:
    """Create `out`; an existing non-empty folder is refused unless `overwrite`."""
    if out.exists() and not out.is_dir():
        raise HptError(f"--out '{out}' exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise HptError(f"--out '{out}' already holds files; pass --overwrite to replace them, or choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HptError(f"--out '{out}' cannot be created ({exc.strerror})") from None
    (out / METRICS).write_text("")
    return out


class MetricsLog:
    """`metrics.jsonl`: one JSON object per logged step, appended and flushed as it happens."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / METRICS).read_text().splitlines() if line.strip()]
