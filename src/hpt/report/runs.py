"""A finished run as the report reads it: its provenance, `hpt eval` results, the monitor's curve and its logs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpt.checkpoints.provenance import FileProvenance
from hpt.core.run_files import BACKBONE, read_metrics, read_monitor
from hpt.errors import HptError
from hpt.eval.uncertainty import SE
from hpt.report.speedup import Curve


@dataclass(frozen=True)
class RunRecord:
    name: str
    path: Path
    provenance: FileProvenance
    evals: dict[str, Any]
    curve: Curve
    """The monitor's reported (test) score against steps (empty for a run without labelled monitor splits)."""
    errors: list[float]
    """The standard error of each point of `curve` (NaN where the run recorded none)."""
    curve_metric: str | None
    training: list[dict[str, Any]]
    monitor: list[dict[str, Any]]

    @property
    def init(self) -> str:
        return self.provenance.init or "?"


def load_run(path: Path) -> RunRecord:
    if not (path / BACKBONE).is_file():
        raise HptError(f"report: '{path}' is not a finished hpt run (no {BACKBONE})")
    provenance = FileProvenance.from_dict(json.loads((path / "backbone.json").read_text()))
    evals = json.loads((path / "eval.json").read_text()) if (path / "eval.json").is_file() else {}
    monitor = read_monitor(path)
    picked_by = next((r["monitor"] for r in monitor if r.get("monitor") not in (None, "unlabelled")), None)
    metric = picked_by.replace("_val_", "_") if picked_by else None  # the test score beside the one that picked
    points = [r for r in monitor if metric in r] if metric else []
    curve = [(int(r["step"]), float(r[str(metric)])) for r in points]
    errors = [float(r.get(f"{metric}{SE}", math.nan)) for r in points]
    return RunRecord(path.name, path, provenance, evals, curve, errors, metric, read_metrics(path), monitor)
