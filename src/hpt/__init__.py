"""hpt: hierarchical self-supervised pretraining from existing pretrained models.

The Python API is the CLI's, with the same typed config:

    from hpt import load_config, pretrain, run_chain, evaluate
    config = load_config("run.yaml", {"data.path": "images/", "model.base": "timm:resnet50"})
    pretrain(config, Path("runs/hpt"))
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.6.0"

_API = {
    "load_config": "hpt.config",
    "pretrain": "hpt.train.loop",
    "run_chain": "hpt.pipeline.chain",
    "evaluate": "hpt.eval.runner",
    "EvalOptions": "hpt.eval.runner",
    "lineage": "hpt.checkpoints.lineage",
    "register_backbone": "hpt.backbones.module_family",
}


def __getattr__(name: str) -> Any:
    """Import on first use, so that `import hpt` (and `hpt --help`) stay fast."""
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'hpt' has no attribute {name!r}")


__all__ = [*_API, "__version__"]
