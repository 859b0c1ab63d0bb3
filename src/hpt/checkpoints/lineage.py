"""`hpt inspect FILE`: the lineage of an hpt file, back to its base, read from the provenance it carries.

Every hpt file embeds its base's provenance, so the whole chain is in the file itself; where an ancestor file
still exists, its sha256 is checked against the one recorded when it was used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpt.checkpoints.files import modified_since_written, sha256_file
from hpt.checkpoints.layouts import load_notes
from hpt.checkpoints.provenance import BACKBONE_FORMAT, FileProvenance, Origin, read_record
from hpt.checkpoints.sources import resolve_path
from hpt.errors import HptError


@dataclass(frozen=True)
class Level:
    """One file (or hub name, or random initialisation) of a lineage."""

    path: str | None
    sha256: str | None
    """Recorded when the file was used (for the bases), or computed now (for the file itself)."""
    provenance: FileProvenance | None
    """The file's hpt provenance; None for a foreign file, a hub's weights or a random initialisation."""
    origin: Origin | None = None
    """How the level above used it (the bases only): hub, module, file or scratch, with its load report."""


def lineage(spec: str) -> list[Level]:
    """`hpt inspect` as data: where an hpt file (or run folder) came from, level by level.

    Args:
        spec: a run folder (its exported backbone) or a weights file.

    Returns:
        Levels from the file itself (first) back to the first base (last).

    Example::

        from hpt import lineage
        for level in lineage("runs/first"):
            print(level.path, level.provenance.method if level.provenance else None)
    """
    path = resolve_path(spec)
    if path is None:
        raise HptError(f"'{spec}': no such file or run folder")
    if not path.name.endswith(".safetensors"):
        return [Level(str(path), sha256_file(path), None)]
    levels = [Level(str(path.resolve()), sha256_file(path), read_record(path))]
    while (provenance := levels[-1].provenance) and (base := provenance.base):
        levels.append(Level(base.path, base.sha256, base.provenance, base))
    return levels


def _name(path: Any) -> str:
    """A file or folder by its name alone: what a published card may say about a local path."""
    return Path(str(path)).name if path else str(path)


def _check(path: str | None, sha256: str | None) -> str:
    if not path or not sha256:
        return ""
    file = Path(path)
    if not file.is_file():
        return " [file no longer there]"
    return " [unchanged]" if sha256_file(file) == sha256 else " [CHANGED since it was used]"


def _teacher(teacher: Origin, shown: Callable[[Any], str], public: bool) -> str:
    """A distillation's teacher in a few words: what it is and where it came from, checked where it is a file."""
    if teacher.source != "file":
        return f"{teacher.spec} ({teacher.backbone}, {teacher.source} weights)"
    checked = "" if public else _check(teacher.path, teacher.sha256)
    return f"{shown(teacher.path)} ({teacher.backbone}) sha256 {str(teacher.sha256)[:16]}{checked}"


def describe(spec: str, public: bool = False) -> str:
    """The lineage in lines; `public`: files and folders by name only (no local paths, nothing checked on this
    machine), for a model card that is published."""
    shown = _name if public else str
    lines = []
    levels = lineage(spec)
    if levels[0].provenance is not None and modified_since_written(Path(str(levels[0].path))):
        lines.append(
            f"WARNING: '{levels[0].path}' was modified since it was written: its tensors or provenance no longer "
            "match the sha256 recorded in it"
        )
    for depth, level in enumerate(levels):
        arrow = "" if depth == 0 else "<- "
        provenance, origin = level.provenance, level.origin
        if origin and origin.source == "hub":
            lines.append(f"{arrow}{origin.spec}: pretrained weights from the {str(origin.spec).split(':')[0]} hub")
            continue
        if origin and origin.source == "scratch":
            lines.append(f"{arrow}random initialisation of {origin.backbone}")
            continue
        checked = _check(level.path, level.sha256) if depth and not public else ""
        lines.append(f"{arrow}{shown(level.path)}  sha256 {str(level.sha256)[:16]}{checked}")
        if provenance and not provenance.is_run:  # written by other code that recorded the architecture only
            lines.append(f"   a file that names its architecture ({provenance.backbone}) and nothing more")
        elif provenance:
            data = provenance.data
            adapt = ", ".join(k for k in provenance.adaptations if k != "batch_norm_reestimated_on")
            lines.append(
                f"   {provenance.format or 'hpt'}: {provenance.backbone}, {provenance.method}, "
                f"init {provenance.init}{' + ' + adapt if adapt else ''}, {provenance.steps} steps "
                f"on {data.images} images of {shown(data.path)}, {provenance.wall_time_s}s, {provenance.created}"
            )
            if teacher := provenance.teacher:
                lines.append(f"   distilled from the teacher {_teacher(teacher, shown, public)}")
            if environment := provenance.environment:
                lines.append(f"   computed with {environment.describe()}")
            parent = provenance.parent
            if provenance.format == BACKBONE_FORMAT and parent:
                checked = "" if public else _check(parent.path, parent.sha256)
                lines.append(f"   exported from {shown(parent.path)}{checked}")
            selected = provenance.selected
            if selected and selected.picked and selected.value is not None:
                lines.append(
                    f"   the backbone of step {selected.step}, the best by {selected.by} ({selected.value:.4f})"
                )
        elif origin:
            report = origin.load_report
            lines.append(
                f"   foreign checkpoint of {origin.backbone}: layout {report.layout if report else None}, "
                f"{report.loaded if report else None} tensors loaded, {len(report.dropped) if report else 0} dropped"
            )
            lines += [f"   {note}" for note in load_notes(report)]
        else:
            lines.append("   a file without hpt provenance")
    return "\n".join(lines)


def environments_compared(first: str, second: str) -> str:
    """Whether two models were computed in the same environment, and where not, what differs: Python, every
    installed package by name (records of 0.8 on; older ones: the packages a run's numbers depend on), the device."""
    environments = [lineage(spec)[0].provenance for spec in (first, second)]
    a, b = (p.environment if p is not None else None for p in environments)
    if a is None or b is None:
        missing = first if a is None else second
        return f"environments: '{missing}' records none (not written by a run of hpt 0.7 or later)"
    changes = a.changes(b)
    if not changes:
        compared = (
            "every installed package"
            if a.installed and b.installed
            else "Python, the device and " + ", ".join(a.packages)
        )
        return f"environments: the same ({compared})"
    return f"environments differ, '{first}' -> '{second}': " + "; ".join(changes)
