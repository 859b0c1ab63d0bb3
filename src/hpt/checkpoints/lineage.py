"""`hpt inspect FILE`: the lineage of an hpt file, back to its base, read from the provenance it carries.

Every hpt file embeds its base's provenance, so the whole chain is in the file itself; where an ancestor file
still exists, its sha256 is checked against the one recorded when it was used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpt.checkpoints.files import modified_since_written, read_provenance, sha256_file
from hpt.checkpoints.layouts import load_notes
from hpt.checkpoints.sources import resolve_path
from hpt.errors import HptError


def lineage(spec: str) -> list[dict[str, Any]]:
    """`hpt inspect` as data: where an hpt file (or run folder) came from, level by level.

    Args:
        spec: a run folder (its exported backbone) or a weights file.

    Returns:
        Levels from the file itself (first) back to the first base (last), each {"path", "sha256",
        "provenance"} (and "origin" for the bases: hub, file or random initialisation).

    Example::

        from hpt import lineage
        for level in lineage("runs/first"):
            print(level["path"], (level["provenance"] or {}).get("method"))
    """
    path = resolve_path(spec)
    if path is None:
        raise HptError(f"'{spec}': no such file or run folder")
    if not path.name.endswith(".safetensors"):
        return [{"path": str(path), "sha256": sha256_file(path), "provenance": None}]
    levels: list[dict[str, Any]] = [
        {"path": str(path.resolve()), "sha256": sha256_file(path), "provenance": read_provenance(path)}
    ]
    while (provenance := levels[-1]["provenance"]) and provenance.get("base"):
        base = provenance["base"]
        levels.append(
            {
                "path": base.get("path"),
                "sha256": base.get("sha256"),
                "origin": base,
                "provenance": base.get("provenance"),
            }
        )
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


def describe(spec: str, public: bool = False) -> str:
    """The lineage in lines; `public`: files and folders by name only (no local paths, nothing checked on this
    machine), for a model card that is published."""
    shown = _name if public else str
    lines = []
    levels = lineage(spec)
    if levels[0]["provenance"] is not None and modified_since_written(Path(levels[0]["path"])):
        lines.append(
            f"WARNING: '{levels[0]['path']}' was modified since it was written: its tensors or provenance no longer "
            "match the sha256 recorded in it"
        )
    for depth, level in enumerate(levels):
        arrow = "" if depth == 0 else "<- "
        provenance = level["provenance"]
        origin = level.get("origin", {})
        if origin.get("source") == "hub":
            lines.append(f"{arrow}{origin['spec']}: pretrained weights from the {origin['spec'].split(':')[0]} hub")
            continue
        if origin.get("source") == "scratch":
            lines.append(f"{arrow}random initialisation of {origin['backbone']}")
            continue
        checked = _check(level["path"], level["sha256"]) if depth and not public else ""
        lines.append(f"{arrow}{shown(level['path'])}  sha256 {str(level['sha256'])[:16]}{checked}")
        if provenance and "method" not in provenance:  # written by other code that recorded the architecture only
            lines.append(f"   a file that names its architecture ({provenance.get('backbone')}) and nothing more")
        elif provenance:
            data = provenance.get("data", {})
            adapt = ", ".join(k for k in provenance.get("adaptations", {}) if k != "batch_norm_reestimated_on")
            lines.append(
                f"   {provenance.get('format', 'hpt')}: {provenance['backbone']}, {provenance['method']}, "
                f"init {provenance['init']}{' + ' + adapt if adapt else ''}, {provenance['steps']} steps "
                f"on {data.get('images')} images of {shown(data.get('path'))}, {provenance.get('wall_time_s')}s, "
                f"{provenance.get('created')}"
            )
            parent = provenance.get("parent")
            if provenance.get("format") == "hpt-backbone" and parent:
                checked = "" if public else _check(parent["path"], parent["sha256"])
                lines.append(f"   exported from {shown(parent['path'])}{checked}")
            selected = provenance.get("selected")
            if selected and selected.get("by") != "last":
                lines.append(
                    f"   the backbone of step {selected['step']}, the best by {selected['by']} "
                    f"({selected['value']:.4f})"
                )
        elif origin:
            report = origin.get("load_report", {})
            lines.append(
                f"   foreign checkpoint of {origin.get('backbone')}: layout {report.get('layout')}, "
                f"{report.get('loaded')} tensors loaded, {len(report.get('dropped', []))} dropped"
            )
            lines += [f"   {note}" for note in load_notes(report)]
        else:
            lines.append("   a file without hpt provenance")
    return "\n".join(lines)
