"""Foreign checkpoint key layouts, mapped explicitly onto a backbone's native (torchvision/timm) keys.

Each layout is detected from its key names and converted with an explicit rule; afterwards the result is
compared key by key and shape by shape with the backbone (nanoGPT's discipline): a missing or mis-shaped
backbone tensor is an error, and the report lists exactly what was missing, unexpected or dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from hpt.backbones import Backbone
from hpt.backbones.adapters import MARKER
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
    taken_from: str | None = None
    """Which of the file's state dicts was read, when it held several (`teacher`, `state_dict_ema`)."""
    identified: str | None = None
    """How the architecture was found when the file did not name it (`identify.py`)."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"layout {self.layout}", f"{self.loaded} tensors loaded"]
        if self.taken_from:
            parts.insert(0, f"read {self.taken_from}")
        for label, keys in (
            ("missing", self.missing),
            ("mis-shaped", self.mismatched),
            ("unexpected", self.unexpected),
            ("dropped", self.dropped),
        ):
            if keys:
                parts.append(f"{len(keys)} {label} (first: {', '.join(keys[:3])})")
        return "; ".join(parts)


def load_notes(report: LoadReport | None) -> list[str]:
    """What a recorded load report says beyond its counts: which state dict was read, how the architecture
    was found (for the run's console and `hpt inspect`)."""
    notes = [f"read {report.taken_from}"] if report and report.taken_from else []
    return notes + ([report.identified] if report and report.identified else [])


# --- layouts ------------------------------------------------------------------------------------------------
# A file is read as wrappers around a body. Wrappers are key prefixes that training code puts around a backbone
# (DDP's `module.`, a Lightning module's `model.`, a method's `backbone.` or MoCo's `encoder_q.`): each is peeled
# off in turn, keeping the tensors under it and dropping (and reporting) the rest, until the keys are the
# backbone's own. The body is then the native layout, or one of two explicit conversions: lukemelas's
# EfficientNet names, or an `nn.Sequential` of the model's children (`0.weight`, `4.0.conv1.weight`).

WRAPPERS: list[tuple[str, str]] = [
    ("hpt-checkpoint", "backbone.model."),
    ("moco", "module.encoder_q."),
    ("moco", "encoder_q."),
    ("moco-v3", "base_encoder."),
    ("lightning", "model."),
    ("backbone", "backbone."),
    ("ddp", "module."),
]
"""(name, prefix), tried in this order: the more specific prefix first."""


def _strip_prefix(state: State, prefix: str) -> tuple[State, list[str]]:
    kept = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    dropped = [k for k in state if not k.startswith(prefix)]
    return kept, dropped


def _fits(state: State, target: State) -> bool:
    """Most of the backbone's own keys are in `state`: nothing to peel or convert."""
    return sum(key in state for key in target) >= max(1, len(target) // 2)


def _wrapper(state: State) -> tuple[str, str] | None:
    for name, prefix in WRAPPERS:
        under = sum(key.startswith(prefix) for key in state)
        if under and (name != "ddp" or under == len(state)):  # `module.` wraps everything or is a model's name
            return name, prefix
    return None


def _sequential_children(state: State, backbone: Backbone) -> State:
    """`nn.Sequential(*list(model.children())[:k])`'s keys (`I.rest`) to the model's (`CHILD_I.rest`), by order.

    Refused when the order cannot be the model's: an index past its children, or one whose child holds no
    tensors (a slice that did not start at the first child); shapes are checked by the audit after this."""
    children = list(backbone.model.named_children())
    holding = {name for name, child in children if any(True for _ in child.state_dict())}
    converted: State = {}
    for key, value in state.items():
        index, _, rest = key.partition(".")
        if int(index) >= len(children) or children[int(index)][0] not in holding:
            raise HptError(
                f"keys '{index}.*' of a Sequential of children cannot be {backbone.name}'s: it has "
                f"{len(children)} children and child {index} holds no tensors; save the backbone with its own "
                "key names (model.state_dict())"
            )
        converted[f"{children[int(index)][0]}.{rest}"] = value
    return converted


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


def _lukemelas_efficientnet(state: State, backbone: Backbone) -> State:
    """lukemelas/EfficientNet-PyTorch names (`_blocks.N._depthwise_conv`) to timm's (`blocks.S.I.conv_dw`).

    lukemelas numbers blocks flat; timm nests them by stage. The N-th flat block is the N-th `blocks.S.I` of
    the timm model in order, which the backbone's own key names give.
    """
    nested = (k.split(".")[1:3] for k in backbone.native_state_dict() if k.startswith("blocks."))
    # only `blocks.S.I` keys: a model with flat blocks (a ViT's `blocks.N.attn`) is then simply not a fit
    positions = sorted({(int(s), int(i)) for s, i in nested if s.isdigit() and i.isdigit()})
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
    return converted


def _body(state: State, backbone: Backbone, target: State) -> tuple[str, State]:
    keys = list(state)
    if not _fits(state, target) and any(k.startswith(("_conv_stem.", "_blocks.")) for k in keys):
        return "lukemelas-efficientnet", _lukemelas_efficientnet(state, backbone)
    if not _fits(state, target) and keys and all(k.partition(".")[0].isdigit() for k in keys):
        return "sequential-children", _sequential_children(state, backbone)
    return "native", dict(state)


def _read_layout(state: State, backbone: Backbone, target: State) -> tuple[str, State, list[str]]:
    """The layout's name, the state in native keys, and what the wrappers dropped."""
    names: list[str] = []
    dropped: list[str] = []
    peeled = ""  # the prefixes peeled so far: dropped keys are reported as the file names them
    while not _fits(state, target) and len(names) < len(WRAPPERS):
        found = _wrapper(state)
        if found is None:
            break
        name, prefix = found
        state, outside = _strip_prefix(state, prefix)
        dropped += [peeled + key for key in outside]
        peeled += prefix
        names.append(name)
    body, native = _body(state, backbone, target)
    if body != "native" or not names:
        names.append(body)
    return "+".join(names), native, dropped


def to_native(state: State, backbone: Backbone, taken_from: str | None = None) -> tuple[State, LoadReport]:
    """Convert `state` to `backbone`'s native keys and audit it; the caller decides what a failure means.
    `taken_from`: which of the file's state dicts `state` is, when it held several (`files.py`)."""
    target = backbone.native_state_dict()
    layout, converted, dropped = _read_layout(state, backbone, target)
    dropped += [k for k in converted if backbone.is_classifier_key(k)]
    converted = {k: v for k, v in converted.items() if not backbone.is_classifier_key(k)}

    input_conv = backbone.input_conv_key if backbone.in_chans != 3 else None
    report = LoadReport(layout=layout, dropped=dropped, taken_from=taken_from)
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


def load_into(backbone: Backbone, state: State, what: str, taken_from: str | None = None) -> LoadReport:
    """Load `state` (any known layout) into `backbone` strictly, or raise a one-line `HptError`."""
    native, report = to_native(state, backbone, taken_from)
    if not report.ok and any(MARKER in key for key in report.unexpected):
        raise HptError(
            f"{what} holds LoRA adapters apart from the layers they adapt (the checkpoint of an --init lora run): "
            "give the run's backbone.safetensors or best.safetensors, where they are merged in"
        )
    if not report.ok:
        raise HptError(f"{what} does not fit {backbone.name}: {report.summary()}")
    backbone.load_native_state_dict(native)
    return report
