"""What every file a run writes says about itself: where its weights came from and how to remake them.

Embedded in the checkpoint, `best.safetensors` and the exported backbone (`checkpoints/files.py` stores it as
the safetensors metadata); `hpt inspect` follows the `base` records back to the first base.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from hpt.checkpoints.provenance import DataRecord, FileProvenance, Origin, Resolved
from hpt.config import PretrainConfig
from hpt.core.environment import Environment
from hpt.version import __version__


@dataclass(frozen=True)
class Provenance:
    config: PretrainConfig
    backbone: str
    init: str
    origin: Origin
    data: DataRecord
    adaptations: dict[str, Any] = field(default_factory=dict)
    """What was done to the copied base before and after training (filter selection, weight scaling, BN)."""
    steps: int = 0
    wall_time_s: float = 0.0
    resolved: Resolved | None = None
    """What the config left to the run, as it ran: the learning rate and its rule, precision, devices, the batch
    per process (config.yaml keeps what was asked)."""
    teacher: Origin | None = None
    """Where the frozen model the method learnt from came from (distillation's teacher), if any."""
    environment: Environment | None = None
    """The packages and device this process computes with."""

    def at(self, steps: int, wall_time_s: float) -> Provenance:
        return replace(self, steps=steps, wall_time_s=wall_time_s)

    def record(self) -> FileProvenance:
        """What the files of the run record (the file's kind, selection and monitor are added by who writes it)."""
        return FileProvenance(
            backbone=self.backbone,
            method=self.config.method,
            init=self.init,
            steps=self.steps,
            wall_time_s=round(self.wall_time_s, 3),
            hpt_version=__version__,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            data=self.data,
            adaptations=self.adaptations,
            resolved=self.resolved,
            base=self.origin,
            parent=self.origin.parent,
            config=self.config.to_dict(),
            teacher=self.teacher,
            environment=self.environment,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_dict()
