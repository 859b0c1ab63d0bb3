"""hpt: hierarchical self-supervised pretraining from existing pretrained models.

The Python API is the CLI's, with the same typed config:

    from hpt import load_config, pretrain, run_chain, evaluate
    config = load_config("run.yaml", {"data.path": "images/", "model.base": "timm:resnet50"})
    pretrain(config, Path("runs/hpt"))
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each is imported on first use (__getattr__)
    from hpt.backbones.module_family import register_backbone as register_backbone
    from hpt.checkpoints.lineage import lineage as lineage
    from hpt.config import load_config as load_config
    from hpt.eval.runner import EvalOptions as EvalOptions
    from hpt.eval.runner import evaluate as evaluate
    from hpt.export.preprocessing import preprocessing as preprocessing
    from hpt.pipeline.chain import run_chain as run_chain
    from hpt.train.loop import pretrain as pretrain

from hpt.version import __version__

_API = {
    "load_config": "hpt.config",
    "pretrain": "hpt.train.loop",
    "run_chain": "hpt.pipeline.chain",
    "evaluate": "hpt.eval.runner",
    "EvalOptions": "hpt.eval.runner",
    "preprocessing": "hpt.export.preprocessing",
    "lineage": "hpt.checkpoints.lineage",
    "register_backbone": "hpt.backbones.module_family",
}


def __getattr__(name: str) -> Any:
    """Import on first use, so that `import hpt` (and `hpt --help`) stay fast."""
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'hpt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*_API, "__version__"])


__all__ = [*_API, "__version__"]
