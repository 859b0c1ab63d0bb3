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
import re
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
    """Write `path` (safetensors, provenance and the file's own sha256 in its metadata: `modified_since_written`)
    and `path`.json, each via rename."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    text = json.dumps(provenance, indent=2, sort_keys=False)
    body = memoryview(save(flat, metadata={PROVENANCE_KEY: text}))
    start = 8 + int.from_bytes(body[:8], "little")  # safetensors: header length, JSON header, then the tensors
    header = json.loads(bytes(body[8:start]))
    header["__metadata__"][FILE_HASH_KEY] = UNSIGNED
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the tensors stay 8-byte aligned, as safetensors writes them
    prefix = len(encoded).to_bytes(8, "little")
    digest = hashlib.sha256(prefix)
    digest.update(encoded)
    digest.update(body[start:])
    signed = encoded.replace(_SIGNATURE_SLOT, _signature(digest.hexdigest()), 1)  # the same length: offsets hold
    write_bytes_atomic(path, prefix, signed, body[start:])
    write_text_atomic(sidecar_path(path), text + "\n")


FILE_HASH_KEY = "hpt_file_sha256"
"""The metadata key of a file's own sha256, over every byte of the file as written with this value set to
`UNSIGNED`: the header's tensor table (names, dtypes, shapes, offsets), its provenance, its padding and the
tensor bytes (hpt 0.8 and later)."""
UNSIGNED = "0" * 64
_SIGNATURE_SLOT = f'"{FILE_HASH_KEY}":"{UNSIGNED}"'.encode()
CONTENT_KEY = "hpt_sha256"
"""hpt 0.6 and 0.7's key: sha256 over the provenance text and the tensor bytes, not the tensor table."""
FIRST_HASHED = (0, 6)
"""The first hpt version that wrote a hash into every file: a file whose provenance says a later hpt made it
and that records none had it removed."""


def _signature(hexdigest: str) -> bytes:
    return f'"{FILE_HASH_KEY}":"{hexdigest}"'.encode()


def modified_since_written(path: Path) -> bool | None:
    """Whether an hpt file changed after hpt wrote it: its recorded sha256 (over the whole file; hpt 0.6-0.7's over
    its provenance and tensor bytes) no longer matches, or it records none though the hpt that made it wrote one.
    None for files hpt did not write (foreign files) and files of hpt before 0.6. Protects against accidents
    and edits, not against someone who recomputes the hash after editing (docs/reliability.md)."""
    with open(path, "rb") as f:
        prefix = f.read(8)
        length = int.from_bytes(prefix, "little")
        if len(prefix) < 8 or length > MAX_HEADER_BYTES:
            return True
        encoded = f.read(length)
        try:
            metadata = json.loads(encoded).get("__metadata__") or {}
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return True
        if PROVENANCE_KEY not in metadata:
            return None  # not hpt's
        if FILE_HASH_KEY in metadata:
            recorded = str(metadata[FILE_HASH_KEY])
            slot = _signature(recorded)
            if encoded.count(slot) != 1:
                return True
            digest = hashlib.sha256(prefix)
            digest.update(encoded.replace(slot, _SIGNATURE_SLOT))
        elif CONTENT_KEY in metadata:
            recorded = str(metadata[CONTENT_KEY])
            digest = hashlib.sha256(metadata[PROVENANCE_KEY].encode())
        else:
            return True if _written_by_a_hashing_hpt(metadata[PROVENANCE_KEY]) else None
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() != recorded


def _written_by_a_hashing_hpt(provenance_text: str) -> bool:
    try:
        version = json.loads(provenance_text).get("hpt_version") or ""
    except (json.JSONDecodeError, AttributeError):
        return True  # provenance that is not hpt's own JSON: changed
    numbers = tuple(int(part) for part in re.findall(r"\d+", str(version))[:2])
    return numbers >= FIRST_HASHED


MAX_HEADER_BYTES = 100 << 20
"""safetensors' own limit on a header's size."""


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")
