"""Foreign checkpoint key layouts, mapped explicitly onto a backbone's native (torchvision/timm) keys.

Each layout is detected from its key names and converted with an explicit rule; afterwards the result is
compared key by key and shape by shape with the backbone (nanoGPT's discipline): a missing or mis-shaped
backbone tensor is an error, and the report lists exactly what was missing, unexpected or dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from hpt.backbones import Backbone
from hpt.backbones.input_channels import adapt_input_conv
from hpt.errors import HptError

State = dict[str, torch.Tensor]


@dataclass
class LoadReport:
    layout: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """Known non-backbone parts: classifier, projection heads, momentum encoder, queue."""
    mismatched: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    """Bookkeeping buffers absent from the file (`num_batches_tracked`), kept at the model's value."""
    adapted: list[str] = field(default_factory=list)
    """Tensors changed to fit: an RGB first convolution adapted to an N-band backbone."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"layout {self.layout}", f"{self.loaded} tensors loaded"]
        for label, keys in (
            ("missing", self.missing),
            ("mis-shaped", self.mismatched),
            ("unexpected", self.unexpected),
            ("dropped", self.dropped),
        ):
            if keys:
                parts.append(f"{len(keys)} {label} (first: {', '.join(keys[:3])})")
        return "; ".join(parts)


# --- layouts: (name, detect(keys), convert(state, backbone) -> (converted, dropped)) -------------------


def _strip_prefix(state: State, prefix: str) -> tuple[State, list[str]]:
    kept = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    dropped = [k for k in state if not k.startswith(prefix)]
    return kept, dropped


def _moco_prefix(keys: list[str]) -> str:
    return "module.encoder_q." if any(k.startswith("module.encoder_q.") for k in keys) else "encoder_q."


# timm EfficientNet block parts, by the lukemelas names, for blocks with and without an expansion conv.
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EFFNET_EXPANDED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_EFFNET_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}


def _lukemelas_efficientnet(state: State, backbone: Backbone) -> tuple[State, list[str]]:
    """lukemelas/EfficientNet-PyTorch names (`_blocks.N._depthwise_conv`) to timm's (`blocks.S.I.conv_dw`).

    lukemelas numbers blocks flat; timm nests them by stage. The N-th flat block is the N-th `blocks.S.I` of
    the timm model in order, which the backbone's own key names give.
    """
    positions = sorted(
        {tuple(int(p) for p in k.split(".")[1:3]) for k in backbone.native_state_dict() if k.startswith("blocks.")}
    )
    converted: State = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            index, _, rest = rest.partition(".")
            part, _, leaf = rest.partition(".")
            expanded = f"_blocks.{index}._expand_conv.weight" in state
            table = _EFFNET_EXPANDED if expanded else _EFFNET_SEPARABLE
            n = int(index)
            if n < len(positions) and part in table:
                stage, i = positions[n]
                converted[f"blocks.{stage}.{i}.{table[part]}.{leaf}"] = value
                continue
        elif head in _EFFNET_TOP:
            converted[f"{_EFFNET_TOP[head]}.{rest}"] = value
            continue
        converted[key] = value  # unknown: reported as unexpected
    return converted, []


Detect = Callable[[list[str]], bool]
Convert = Callable[[State, Backbone], tuple[State, list[str]]]

LAYOUTS: list[tuple[str, Detect, Convert]] = [
    (
        "hpt-checkpoint",
        lambda keys: any(k.startswith("backbone.model.") for k in keys),
        lambda s, b: _strip_prefix(s, "backbone.model."),
    ),
    (
        "moco",
        lambda keys: any(k.startswith(("module.encoder_q.", "encoder_q.")) for k in keys),
        lambda s, b: _strip_prefix(s, _moco_prefix(list(s))),
    ),
    (
        "mmselfsup",
        lambda keys: any(k.startswith("backbone.") for k in keys),
        lambda s, b: _strip_prefix(s, "backbone."),
    ),
    (
        "lukemelas-efficientnet",
        lambda keys: any(k.startswith(("_conv_stem.", "_blocks.")) for k in keys),
        _lukemelas_efficientnet,
    ),
    (
        "ddp-native",
        lambda keys: bool(keys) and all(k.startswith("module.") for k in keys),
        lambda s, b: _strip_prefix(s, "module."),
    ),
    ("native", lambda keys: True, lambda s, b: (dict(s), [])),
]


def detect_layout(state: State) -> str:
    keys = list(state)
    return next(name for name, detect, _ in LAYOUTS if detect(keys))


def to_native(state: State, backbone: Backbone) -> tuple[State, LoadReport]:
    """Convert `state` to `backbone`'s native keys and audit it; the caller decides what a failure means."""
    layout = detect_layout(state)
    convert = next(conv for name, _, conv in LAYOUTS if name == layout)
    converted, dropped = convert(state, backbone)
    dropped += [k for k in converted if backbone.is_classifier_key(k)]
    converted = {k: v for k, v in converted.items() if not backbone.is_classifier_key(k)}

    target = backbone.native_state_dict()
    input_conv = backbone.input_conv_key if backbone.in_chans != 3 else None
    report = LoadReport(layout=layout, dropped=dropped)
    native: State = {}
    for key, want in target.items():
        got = converted.get(key)
        if got is None:
            (report.filled if key.endswith("num_batches_tracked") else report.missing).append(key)
            native[key] = want
        elif (
            key == input_conv
            and got.ndim == 4
            and got.shape[1] == 3
            and got.shape[2:] == want.shape[2:]
            and (got.shape[0] == want.shape[0] and want.shape[1] != 3)
        ):  # an RGB base for an N-band backbone: its first filters adapted (backbones/input_channels.py)
            native[key] = adapt_input_conv(got, want.shape[1]).to(want.dtype)
            report.adapted.append(f"{key}: 3 -> {want.shape[1]} input channels")
        elif tuple(got.shape) != tuple(want.shape):
            report.mismatched.append(f"{key} {tuple(got.shape)} vs {tuple(want.shape)}")
        else:
            native[key] = got.to(want.dtype)
    report.unexpected = [k for k in converted if k not in target]
    report.loaded = len(target) - len(report.missing) - len(report.mismatched) - len(report.filled)
    return native, report


def load_into(backbone: Backbone, state: State, what: str) -> LoadReport:
    """Load `state` (any known layout) into `backbone` strictly, or raise a one-line `HptError`."""
    native, report = to_native(state, backbone)
    if not report.ok:
        raise HptError(f"{what} does not fit {backbone.name}: {report.summary()}")
    backbone.load_native_state_dict(native)
    return report
