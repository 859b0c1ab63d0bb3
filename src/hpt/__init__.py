"""hpt: hierarchical self-supervised pretraining from existing pretrained models.

The Python API is the CLI's: one call with the flags as keyword settings, or a typed config.

    import hpt
    result = hpt.pretrain(data="images/", out="runs/hpt", base="timm:resnet50", steps=500, batch_size=64)
    print(result.backbone, result.verdict())

    config = hpt.load_config("run.yaml", {"data.path": "images/", "model.base": "timm:resnet50"})
    hpt.pretrain(config, "runs/hpt")                 # the same, from a config
    hpt.pretrain(data="images/", out="runs/b", callbacks=[MyCallback()])   # hpt.Callback: on_step, ...
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each is imported on first use (__getattr__)
    from hpt.api import evaluate as evaluate
    from hpt.api import export_model as export_model
    from hpt.api import pretrain as pretrain
    from hpt.backbones.module_family import register_backbone as register_backbone
    from hpt.checkpoints.lineage import lineage as lineage
    from hpt.config import load_config as load_config
    from hpt.eval.runner import EvalOptions as EvalOptions
    from hpt.export.preprocessing import preprocessing as preprocessing
    from hpt.pipeline.chain import run_chain as run_chain
    from hpt.train.callbacks import Callback as Callback
    from hpt.train.callbacks import Checkpointed as Checkpointed
    from hpt.train.callbacks import Evaluation as Evaluation
    from hpt.train.callbacks import RunSummary as RunSummary
    from hpt.train.callbacks import StepEnd as StepEnd

from hpt.version import __version__

_API = {
    "load_config": "hpt.config",
    "pretrain": "hpt.api",
    "Callback": "hpt.train.callbacks",
    "StepEnd": "hpt.train.callbacks",
    "Evaluation": "hpt.train.callbacks",
    "Checkpointed": "hpt.train.callbacks",
    "RunSummary": "hpt.train.callbacks",
    "run_chain": "hpt.pipeline.chain",
    "evaluate": "hpt.api",
    "export_model": "hpt.api",
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
