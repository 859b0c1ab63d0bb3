"""Reading tensors from untrusted files, and writing them atomically with provenance.

Files from users are untrusted: `.pth/.pt` are only ever opened with `torch.load(weights_only=True)`, which
refuses any pickle that would build objects other than tensors and plain containers; safetensors files have
their header validated by the safetensors library.

Tensors are written atomically (`hpt.core.atomic`), their provenance in the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from hpt.checkpoints.kinds import PICKLE_SUFFIXES, not_safetensors, unknown_format
from hpt.core.atomic import write_bytes_atomic, write_text_atomic
from hpt.errors import HptError, first_line

PROVENANCE_KEY = "hpt"
_NESTED_STATE_KEYS = ("state_dict", "model", "module", "network", "backbone")
# Copies of the weights a method evaluates and releases, taken before the raw ones when a file holds both:
# DINO/iBOT's teacher (not the student), a timm training checkpoint's EMA (not `state_dict`).
_PREFERRED_STATE_KEYS = {
    "teacher": "the teacher (the student is not used)",
    "state_dict_ema": "state_dict_ema, the EMA weights (the raw state_dict is not used)",
    "model_ema": "model_ema, the EMA weights (the raw model is not used)",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileWeights:
    tensors: dict[str, torch.Tensor]
    provenance: dict[str, Any] | None
    """hpt's provenance; None for foreign files."""
    taken_from: str | None = None
    """Which state dict of several was read (`teacher`, `state_dict_ema`), said in the load report."""


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The flat tensor dict in `path` and its hpt provenance (None for foreign files)."""
    weights = read_weights(path)
    return weights.tensors, weights.provenance


def read_weights(path: Path) -> FileWeights:
    """The weights in `path`, with its provenance and, for a file of several state dicts, which was read."""
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return FileWeights(*_read_safetensors(path))
    if name.endswith(PICKLE_SUFFIXES):
        return _read_weights_only(path)
    raise unknown_format(path)


def _read_safetensors(path: Path, with_tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise not_safetensors(path, exc) from None
    return tensors, _parse_provenance(path, metadata)


def read_provenance(path: Path) -> dict[str, Any] | None:
    """The hpt provenance in a safetensors file's metadata, without reading its tensors."""
    return _read_safetensors(path, with_tensors=False)[1]


def _parse_provenance(path: Path, metadata: dict[str, str]) -> dict[str, Any] | None:
    if PROVENANCE_KEY not in metadata:
        return None
    try:
        return json.loads(metadata[PROVENANCE_KEY])
    except json.JSONDecodeError:
        raise HptError(f"checkpoint '{path}': its hpt provenance is not valid JSON") from None


def _read_weights_only(path: Path) -> FileWeights:
    try:  # training scripts (DINO's, timm's) store their argparse options beside the weights: a plain record
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted file is the user's input error
        raise HptError(
            f"checkpoint '{path}': refused; it is not a plain-tensor PyTorch file ({first_line(exc)}); "
            "save the weights alone with torch.save(model.state_dict(), PATH)"
        ) from None
    if isinstance(obj, dict):
        for key, said in _PREFERRED_STATE_KEYS.items():
            state = _find_state_dict(obj.get(key))
            if state:
                return FileWeights(state, None, said)
    state = _find_state_dict(obj)
    if state is None:
        raise HptError(
            f"checkpoint '{path}': holds no dict of tensors "
            f"(looked at the top level and {', '.join((*_PREFERRED_STATE_KEYS, *_NESTED_STATE_KEYS))})"
        )
    return FileWeights(state, None)


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if not isinstance(obj, dict):
        return None
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors and len(tensors) >= len(obj) // 2:
        return tensors
    for key in _NESTED_STATE_KEYS:
        found = _find_state_dict(obj.get(key))
        if found:
            return found
    return None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], provenance: dict[str, Any]) -> None:
    """Write `path` (safetensors, provenance and its own content hash in its metadata: `modified_since_written`)
    and `path`.json, each via rename."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    text = json.dumps(provenance, indent=2, sort_keys=False)
    body = memoryview(save(flat, metadata={PROVENANCE_KEY: text}))
    start = 8 + int.from_bytes(body[:8], "little")  # safetensors: header length, JSON header, then the tensors
    header = json.loads(bytes(body[8:start]))
    header["__metadata__"][CONTENT_KEY] = _content_hash(text, body[start:])
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the tensors stay 8-byte aligned, as safetensors writes them
    write_bytes_atomic(path, len(encoded).to_bytes(8, "little"), encoded, body[start:])
    write_text_atomic(sidecar_path(path), text + "\n")


CONTENT_KEY = "hpt_sha256"
"""The metadata key of a file's own content hash: sha256 over its provenance text and its tensor bytes."""


def _content_hash(provenance_text: str, data: memoryview | bytes) -> str:
    digest = hashlib.sha256(provenance_text.encode())
    digest.update(data)
    return digest.hexdigest()


def modified_since_written(path: Path) -> bool | None:
    """Whether an hpt file's tensors or provenance changed after hpt wrote it (its recorded content hash no
    longer matches); None for files that record none (foreign files, hpt before 0.6)."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if length > MAX_HEADER_BYTES:
            return True
        try:
            metadata = json.loads(f.read(length)).get("__metadata__") or {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return True
        if CONTENT_KEY not in metadata or PROVENANCE_KEY not in metadata:
            return None
        digest = hashlib.sha256(metadata[PROVENANCE_KEY].encode())
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() != metadata[CONTENT_KEY]


MAX_HEADER_BYTES = 100 << 20
"""safetensors' own limit on a header's size."""


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")
