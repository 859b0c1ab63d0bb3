"""Which files can hold weights, told from their names and headers alone, without importing torch: what
`hpt pretrain` checks of `--base` before its seconds of start-up (`train/precheck.py`), and what the readers
(`files.py`, `sources.py`) refuse in the same words."""

from __future__ import annotations

from pathlib import Path

from hpt.errors import HptError, first_line

SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt", ".bin")


def unknown_format(path: Path) -> HptError:
    return HptError(
        f"checkpoint '{path}': unknown format; expected {SAFETENSORS_SUFFIX} or one of {', '.join(PICKLE_SUFFIXES)}"
    )


def not_safetensors(path: Path, exc: Exception) -> HptError:
    return HptError(f"checkpoint '{path}': not a valid safetensors file ({first_line(exc)})")


def not_found(spec: str, role: str) -> HptError:
    return HptError(
        f"{role} '{spec}': no such file or folder, and not a hub name such as "
        "timm:tf_efficientnet_lite0 or torchvision:resnet50"
    )


def check_weights_spec(spec: str, role: str = "base") -> None:
    """`spec` is a hub-like name (`family:model`), a run folder, or a file whose name and header can hold
    weights; the rest (a typo, a text file, a damaged safetensors header) is one line now, not after start-up."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return  # a run folder: its backbone is checked where it is read
    if not path.is_file():
        if ":" not in spec:
            raise not_found(spec, role)
        return  # a hub name: the registry checks its family when it is built
    name = path.name.lower()
    if name.endswith(SAFETENSORS_SUFFIX):
        from safetensors import SafetensorError, safe_open  # no torch: the header alone

        try:
            with safe_open(str(path), framework="numpy") as f:
                f.metadata()
        except (SafetensorError, OSError, ValueError) as exc:
            raise not_safetensors(path, exc) from None
    elif not name.endswith(PICKLE_SUFFIXES):
        raise unknown_format(path)
