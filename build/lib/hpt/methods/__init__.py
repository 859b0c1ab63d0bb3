"""Self-supervised methods, one file each, registered by name; each composed from a backbone, heads and a pure
loss.

A method's file defines its module (an `SSLMethod`) and ends with its `RECORD` (a `MethodRecord`: name, config
section, builder, how it treats BatchNorm across processes); `METHODS` collects every record found in this
package, so adding a method touches its own file, its config section (`hpt/config.py`) and its tests
(docs/design.md, "Adding a method").
"""

from __future__ import annotations

import importlib
import pkgutil

from hpt.backbones import Backbone
from hpt.config import PretrainConfig
from hpt.data.stats import PixelStats
from hpt.methods.base import MethodRecord, SSLMethod, StepOutput, ViewFactory


def _records() -> dict[str, MethodRecord]:
    """Every `RECORD` of this package's modules, by name, in name order."""
    found: dict[str, MethodRecord] = {}
    for info in pkgutil.iter_modules(__path__):
        record = getattr(importlib.import_module(f"{__name__}.{info.name}"), "RECORD", None)
        if isinstance(record, MethodRecord):
            found[record.name] = record
    return dict(sorted(found.items()))


METHODS: dict[str, MethodRecord] = _records()


def syncs_batch_norm(config: PretrainConfig) -> bool:
    """`train.sync_batch_norm`, or by default: on, except for the methods that shuffle instead."""
    return METHODS[config.method].syncs_batch_norm(config.train)


def build_method(name: str, backbone: Backbone, config: PretrainConfig, stats: PixelStats) -> SSLMethod:
    """`stats`: the per-channel mean/std the views are normalised with (a teacher may want its own)."""
    return METHODS[name].build(backbone, config, stats)


__all__ = ["METHODS", "MethodRecord", "SSLMethod", "StepOutput", "ViewFactory", "build_method", "syncs_batch_norm"]
