"""Where a model comes from: a hub name, a local checkpoint file, or an hpt run folder.

One function serves every place that needs weights: the base of `hpt pretrain` and the model of `hpt eval`.
"""

from __future__ import annotations

from pathlib import Path

from hpt.backbones import Backbone, create_backbone, is_backbone_name
from hpt.checkpoints.files import modified_since_written, read_weights, sha256_file
from hpt.checkpoints.identify import identify
from hpt.checkpoints.kinds import not_found
from hpt.checkpoints.layouts import load_into
from hpt.checkpoints.provenance import Origin, read_record, record_of
from hpt.core.run_files import BACKBONE
from hpt.errors import HptError


def resolve_path(spec: str) -> Path | None:
    """The file behind `spec` (a run folder means its exported backbone), or None when it is no path."""
    path = Path(spec).expanduser()
    if path.is_dir():
        file = path / BACKBONE
        if not file.is_file():
            raise HptError(f"'{spec}' is a folder without {BACKBONE}: not a finished hpt run")
        return file
    return path if path.is_file() else None


def load_backbone(
    spec: str, backbone_name: str | None = None, role: str = "base", in_chans: int | None = None
) -> tuple[Backbone, Origin]:
    """Build the backbone `spec` describes and load its weights; return it with a record of its origin.

    `backbone_name` names the architecture for foreign files; hpt's own files carry it in their provenance.
    `in_chans`: the input channels wanted (an RGB base's first convolution is adapted); None: the file's own
    (hpt files record it), else 3.
    """
    path = resolve_path(spec)
    if path is not None:
        return _from_file(spec, path, backbone_name, role, in_chans)
    if is_backbone_name(spec):
        if backbone_name and backbone_name != spec:
            raise HptError(f"{role} '{spec}' is a {spec} model but --backbone says {backbone_name}")
        try:  # the name is validated before anything is downloaded
            backbone = create_backbone(spec, pretrained=True, in_chans=in_chans or 3)
        except HptError:
            raise
        except Exception as exc:  # noqa: BLE001 - network and hub failures are reported, not raised
            raise HptError(f"{role} '{spec}': could not fetch its pretrained weights from the hub ({exc})") from None
        return backbone, Origin("module" if spec.startswith("module:") else "hub", backbone.name, spec)
    raise not_found(spec, role)


def load_one_of_several(
    spec: str, backbone_name: str | None, role: str, in_chans: int | None = None
) -> tuple[Backbone, Origin]:
    """`load_backbone` for one of several models given together with one `--backbone`: it names the
    architecture of the foreign files among them; hub names and hpt files keep their own."""
    named = architecture_of(spec, role)
    return load_backbone(spec, None if named else backbone_name, role, in_chans)


def architecture_of(spec: str, role: str = "base") -> str | None:
    """The backbone name `spec` names without building it: a hub name, or an hpt file's provenance (None for
    a foreign file, which names nothing; `identify.py` finds its architecture from its keys)."""
    if is_backbone_name(spec):
        return spec
    path = resolve_path(spec)
    if path is None:
        raise not_found(spec, role)
    if path.name.endswith(".safetensors"):
        provenance = read_record(path)
        return provenance.backbone if provenance else None
    return None


def find_architecture(spec: str, role: str = "base") -> str:
    """The architecture `spec` holds: what it names (`architecture_of`), else for a foreign file what its keys
    and shapes identify."""
    named = architecture_of(spec, role)
    if named:
        return named
    path = resolve_path(spec)
    assert path is not None  # architecture_of names every hub name and refuses what is neither
    return identify(read_weights(path).tensors, f"{role} '{spec}'")[0]


def _from_file(
    spec: str, path: Path, backbone_name: str | None, role: str, in_chans: int | None
) -> tuple[Backbone, Origin]:
    weights = read_weights(path)
    provenance = record_of(weights.provenance)
    recorded = provenance.backbone if provenance else None
    if recorded and backbone_name and recorded != backbone_name:
        raise HptError(f"{role} '{spec}' holds a {recorded} backbone but --backbone says {backbone_name}")
    recorded_chans = provenance.data.channels if provenance else 3
    name, identified = backbone_name or recorded, None
    if name is None:
        name, identified = identify(weights.tensors, f"{role} '{spec}'", recorded_chans)
    backbone = create_backbone(name, in_chans=in_chans or recorded_chans)
    report = load_into(backbone, weights.tensors, f"{role} '{spec}'", weights.taken_from)
    report.identified = identified
    modified = bool(modified_since_written(path)) if weights.provenance is not None else None
    origin = Origin("file", backbone.name, spec, str(path.resolve()), sha256_file(path), report, provenance, modified)
    return backbone, origin


def modified_file(spec: str | None) -> Path | None:
    """The hpt file `spec` names (a run folder: its backbone) when it was modified since hpt wrote it; else None
    (unchanged, not hpt's, a hub name, nothing)."""
    if not spec:
        return None
    path = resolve_path(spec)
    if path is None or not path.name.endswith(".safetensors"):
        return None
    return path if modified_since_written(path) else None


def refuse_modified(found: list[tuple[str, Path]], allowed: bool) -> list[str]:
    """`found`: (role, file) of files modified since hpt wrote them. Without `allowed`, one line naming the first;
    with it, their record (`ROLE 'PATH'`), kept in the provenance of what is made from them."""
    if found and not allowed:
        role, path = found[0]
        raise HptError(
            f"{role} '{path}' was modified since hpt wrote it (its sha256 no longer matches the one recorded in it): "
            "restore it, or pass --allow-modified to use it anyway (recorded in the run's provenance)"
        )
    return [f"{role} '{path}'" for role, path in found]


def modified_warning(origin: Origin) -> str | None:
    """One WARNING line for a model read from a file modified since hpt wrote it (eval, select, embed, export)."""
    if not origin.modified:
        return None
    return (
        f"WARNING: '{origin.path}' was modified since hpt wrote it: its sha256 no longer matches the one recorded "
        "in it, so its weights or provenance may not be what its run made"
    )
