"""What an hpt file says about itself, typed both ways: one record per kind of thing a file records, each with
`from_dict` (reads what any hpt since 0.1 wrote) and `to_dict` (what hpt writes now).

A run writes it into every weights file (`files.save_tensors`: the safetensors metadata, and beside it as
JSON): `checkpoint.safetensors` (`format: hpt-checkpoint`), `best.safetensors` and `backbone.safetensors`
(`hpt-backbone`). Readers (lineage, `hpt eval`, the card, timm's config.json, the report, `--resume`) use these
records and nothing else: a key is named here once. What older files lack gets the default that describes
them (0.1 and 0.2 wrote no intensity window or band count: 8-bit RGB; 0.6.0 and older no `resolved`; before
0.6 no data fingerprint).
Committed examples of every version's files are read in tests/test_provenance.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from hpt.checkpoints.files import read_provenance
from hpt.checkpoints.layouts import LoadReport
from hpt.core.environment import Environment

CHECKPOINT_FORMAT = "hpt-checkpoint"
BACKBONE_FORMAT = "hpt-backbone"
AGAINST = {"step_0": "the starting point (step 0)", "last": "the last step"}
"""What each of `Compared`'s comparisons is against, in words."""


@dataclass(frozen=True)
class Origin:
    """Where a backbone's starting weights came from: a hub's pretrained weights, a module registered through
    the Python API (`module:NAME`), a file, or none (scratch).

    Recorded as the `base` of every file made from it (`to_dict`), so a file's lineage reaches back to it."""

    source: Literal["hub", "module", "file", "scratch"]
    backbone: str
    spec: str | None = None
    """What the user named: a hub name or a path; None for a random initialisation."""
    path: str | None = None
    sha256: str | None = None
    load_report: LoadReport | None = None
    provenance: FileProvenance | None = None
    """The file's own hpt provenance, when it has one: its lineage continues there."""
    modified: bool | None = None
    """An hpt file whose sha256 no longer matches the one recorded in it (`files.modified_since_written`); None:
    not an hpt file, or one that records no hash."""

    @classmethod
    def scratch(cls, backbone: str) -> Origin:
        return cls("scratch", backbone)

    @property
    def parent(self) -> Parent | None:
        """The file (or hub name) this one was made from, with its checksum where it is a file."""
        return Parent(str(self.path or self.spec), self.sha256) if self.spec else None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"spec": self.spec, "source": self.source, "backbone": self.backbone}
        if self.source == "file":
            record.update(
                path=self.path,
                sha256=self.sha256,
                load_report=self.load_report.to_dict() if self.load_report else None,
                provenance=self.provenance.to_dict() if self.provenance else None,
            )
            if self.modified:
                record["modified_since_written"] = True
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Origin:
        report, provenance = record.get("load_report"), record.get("provenance")
        return cls(
            record.get("source") or ("file" if record.get("path") else "scratch"),
            str(record.get("backbone") or ""),
            record.get("spec"),
            record.get("path"),
            record.get("sha256"),
            _known(LoadReport, report) if isinstance(report, dict) and report.get("layout") else None,
            FileProvenance.from_dict(provenance) if isinstance(provenance, dict) else None,
            True if record.get("modified_since_written") else None,
        )


@dataclass(frozen=True)
class Parent:
    """The file an exported backbone was taken from (the run's checkpoint), with its checksum then."""

    path: str
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Parent:
        return cls(str(record.get("path")), record.get("sha256"))


@dataclass(frozen=True)
class Compared:
    """The exported step against step 0 and the last step on the monitor's test images, image by image
    (`eval.uncertainty.Difference.to_dict()` records; 0.7 on)."""

    score: str
    step_0: dict[str, Any] | None = None
    last: dict[str, Any] | None = None

    def named(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, comparison) for those made: `step_0`, `last`."""
        return [(name, value) for name, value in (("step_0", self.step_0), ("last", self.last)) if value]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, **dict(self.named())}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Compared:
        return cls(str(record.get("score", "")), record.get("step_0"), record.get("last"))


@dataclass(frozen=True)
class Selected:
    """Which step's backbone a file holds and why: the best evaluation `by` a score (its `value`, every score
    of that evaluation), or `by: last`."""

    step: int
    by: str = "last"
    value: float | None = None
    scores: dict[str, float] | None = None
    compared: Compared | None = None
    leader: int | None = None
    """The step with the highest `by` so far, where the kept step is a later one its validation images cannot tell
    from it (`train/best.py`); None: the kept step is that step (or the record is of 0.7 and before)."""
    leader_value: float | None = None
    tied: dict[str, Any] | None = None
    """The kept step against the leader on the validation images (`Difference.to_dict()`), where it is later."""

    @property
    def picked(self) -> bool:
        """Chosen by a score (not simply the last step)."""
        return self.by != "last"

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.step, "by": self.by}
        if self.value is not None:
            record.update(value=self.value, scores=self.scores)
        if self.compared is not None:
            record["compared"] = self.compared.to_dict()
        if self.leader is not None:
            record.update(leader=self.leader, leader_value=self.leader_value, tied=self.tied)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Selected:
        compared, value, leader = record.get("compared"), record.get("value"), record.get("leader")
        leader_value = record.get("leader_value")
        return cls(
            int(record["step"]),
            str(record.get("by") or "last"),
            None if value is None else float(value),
            record.get("scores"),
            Compared.from_dict(compared) if isinstance(compared, dict) else None,
            None if leader is None else int(leader),
            None if leader_value is None else float(leader_value),
            record.get("tied") if isinstance(record.get("tied"), dict) else None,
        )


@dataclass(frozen=True)
class Resolved:
    """What the config left to the run, as it ran (hpt 0.6.0 and older files have none)."""

    lr: float
    """The peak learning rate the run used (per 256 images, scaled with the batch)."""
    lr_rule: str
    """Where it came from, in words (`mocov2.lr 0.03 x batch 64 / 256`)."""
    precision: str
    processes: int
    device: str
    batch_per_process: int
    accumulate: int = 1
    """Micro-batches each process's batch was split into, their gradients summed (`train.accumulate`; 0.8 on,
    written only when above 1: a run without it writes what 0.7 wrote)."""
    modified_inputs: list[str] = field(default_factory=list)
    """Files the run used though they no longer matched the sha256 hpt recorded in them (`--allow-modified`), each
    as `ROLE 'PATH'` (written only when some were: 0.8 on)."""

    def describe(self) -> str:
        said = (
            f"learning rate {self.lr:.4g} ({self.lr_rule}), cosine to 0; precision {self.precision}; "
            f"{self.processes} process(es) on {self.device}, {self.batch_per_process} images each per step"
        )
        if self.accumulate > 1:
            micro = self.batch_per_process // self.accumulate
            said += f", in {self.accumulate} micro-batches of {micro} (BatchNorm and in-batch comparisons see {micro})"
        return said

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.accumulate == 1:
            del record["accumulate"]
        if not self.modified_inputs:
            del record["modified_inputs"]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Resolved | None:
        try:
            return _known(cls, record)
        except TypeError:  # a key missing: not one this version can read
            return None


@dataclass(frozen=True)
class DataRecord:
    """The images a run trained on and how their files became pixels."""

    path: str | None = None
    images: int | None = None
    """Images trained on."""
    held_out: int = 0
    """Images held out of training for the label-free monitor."""
    mean: list[float] | None = None
    std: list[float] | None = None
    """The data's own per-channel statistics the run normalised with (one per band)."""
    intensity: dict[str, Any] | None = None
    """The intensity window (`data.intensity.Window.to_dict()`); None: none recorded (hpt 0.1: 8-bit RGB). With
    `channels`, how files became pixels: whoever uses the backbone must do the same."""
    channels: int = 3
    bands: list[int] | None = None
    """`data.bands`: which bands of each file, numbered from 1, the `channels` are; None: all, in order."""
    fingerprint: str = ""
    """sha256 of the run's `data.json` (`data/fingerprint.py`: which files, of which sizes and times; 0.6 on)."""
    changed_on_resume: list[dict[str, int]] = field(default_factory=list)
    """Each `--resume --allow-data-change` that met changed data: its step and the files added, removed, changed."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "images": self.images,
            "held_out": self.held_out,
            "mean": self.mean,
            "std": self.std,
            "intensity": self.intensity,
            "channels": self.channels,
            **({"bands": self.bands} if self.bands is not None else {}),
            "fingerprint": self.fingerprint,
            "changed_on_resume": self.changed_on_resume,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> DataRecord:
        return cls(
            record.get("path"),
            record.get("images"),
            int(record.get("held_out") or 0),
            _floats(record.get("mean")),
            _floats(record.get("std")),
            record.get("intensity"),
            int(record.get("channels") or 3),
            [int(b) for b in record["bands"]] if isinstance(record.get("bands"), list) else None,
            str(record.get("fingerprint") or ""),
            list(record.get("changed_on_resume") or []),
        )


@dataclass(frozen=True)
class FileProvenance:
    """The provenance of one weights file. `method` is None for a file that names its architecture and nothing
    more (written by other code, `is_run` False)."""

    backbone: str | None
    method: str | None = None
    init: str | None = None
    steps: int = 0
    wall_time_s: float = 0.0
    hpt_version: str | None = None
    created: str | None = None
    data: DataRecord = field(default_factory=DataRecord)
    adaptations: dict[str, Any] = field(default_factory=dict)
    """What was done to the copied base before and after training (filter selection, weight scaling, BN)."""
    resolved: Resolved | None = None
    base: Origin | None = None
    parent: Parent | None = None
    config: dict[str, Any] = field(default_factory=dict)
    """The run's config as it was written (a tree): kept as written, since an older version's keys may no longer
    validate; `config_value` reads it."""
    format: str | None = None
    """`hpt-checkpoint` or `hpt-backbone`; None before a file recorded its kind."""
    selected: Selected | None = None
    monitor: list[dict[str, Any]] | None = None
    """The monitor's evaluations (metrics.jsonl's records: open-ended score names), in the exported backbone."""
    teacher: Origin | None = None
    """The frozen model a distillation run learnt from (0.8 on), recorded as a base is: hub name or file, checksum,
    its own provenance."""
    environment: Environment | None = None
    """The packages and device the process that wrote the file computed with (0.8 on; `core/environment.py`)."""

    @property
    def is_run(self) -> bool:
        return self.method is not None

    def config_value(self, dotted: str) -> Any:
        """`config.SECTION.KEY` as the run recorded it; None where it recorded none."""
        node: Any = self.config
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node

    @property
    def image_size(self) -> int | None:
        """The size the model was pretrained at, if it records one."""
        size = self.config_value("data.image_size")
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "hpt_version": self.hpt_version,
            "created": self.created,
            "backbone": self.backbone,
            "method": self.method,
            "init": self.init,
            "steps": self.steps,
            "wall_time_s": self.wall_time_s,
            "data": self.data.to_dict(),
            "adaptations": self.adaptations,
            "resolved": self.resolved.to_dict() if self.resolved else {},
            "base": self.base.to_dict() if self.base else None,
            "parent": self.parent.to_dict() if self.parent else None,
            "config": self.config,
        }
        if self.format is not None:
            record["format"] = self.format
        if self.selected is not None:
            record["selected"] = self.selected.to_dict()
        if self.monitor is not None:
            record["monitor"] = self.monitor
        if self.teacher is not None:
            record["teacher"] = self.teacher.to_dict()
        if self.environment is not None:
            record["environment"] = self.environment.to_dict()
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> FileProvenance:
        base, parent, selected, teacher, environment = (
            record.get(key) for key in ("base", "parent", "selected", "teacher", "environment")
        )
        return cls(
            record.get("backbone"),
            record.get("method"),
            record.get("init"),
            int(record.get("steps") or 0),
            float(record.get("wall_time_s") or 0.0),
            record.get("hpt_version"),
            record.get("created"),
            DataRecord.from_dict(record.get("data") or {}),
            dict(record.get("adaptations") or {}),
            Resolved.from_dict(record.get("resolved") or {}),
            Origin.from_dict(base) if isinstance(base, dict) else None,
            Parent.from_dict(parent) if isinstance(parent, dict) else None,
            dict(record.get("config") or {}),
            record.get("format"),
            Selected.from_dict(selected) if isinstance(selected, dict) else None,
            record.get("monitor"),
            Origin.from_dict(teacher) if isinstance(teacher, dict) else None,
            Environment.from_dict(environment) if isinstance(environment, dict) else None,
        )


def read_record(path: Path) -> FileProvenance | None:
    """The provenance of an hpt weights file, typed; None for a file without one."""
    return record_of(read_provenance(path))


def record_of(raw: dict[str, Any] | None) -> FileProvenance | None:
    """A provenance as read from a file (`files.read_tensors`, `read_weights`), typed; None stays None."""
    return FileProvenance.from_dict(raw) if raw is not None else None


def _floats(values: Any) -> list[float] | None:
    return [float(v) for v in values] if isinstance(values, list) else None


def _known(record_type: type, values: dict[str, Any]) -> Any:
    """`record_type(**values)` with the keys it knows (a newer file may record more)."""
    names = {f.name for f in fields(record_type)}
    return record_type(**{key: value for key, value in values.items() if key in names})
