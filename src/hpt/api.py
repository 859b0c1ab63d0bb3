"""One call from Python: `hpt.pretrain(data=..., out=..., base=..., steps=..., **settings)`, `hpt.evaluate(model,
train, test, protocol=..., **settings)` and `hpt.export_model(run, format=...)` (not `hpt.export`:
that name is the package `hpt.export`).

Keyword settings are the command line's flags (`batch_size=64` is `--batch-size 64`, `monitor_test=...` is
`--monitor-test ...`) and any config key, dotted as `--set` takes it (`**{"mocov2.queue_size": 4096}`), validated
as on the command line: an unknown name or a bad value is one `HptError` naming it. `config=` starts from a YAML
file or a `PretrainConfig` instead of the defaults.

    import hpt
    result = hpt.pretrain(data="images/", out="runs/a", base="timm:resnet50", steps=500, batch_size=64,
                          monitor_train="labelled/train", monitor_test="labelled/test")
    print(result.backbone, result.picked_step, result.verdict())
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpt.cli import PRETRAIN_FLAGS
from hpt.config import PretrainConfig, load_config
from hpt.errors import HptError
from hpt.eval.runner import EvalOptions
from hpt.eval.runner import evaluate as run_evaluate
from hpt.export.command import export_run
from hpt.train.callbacks import Callback, RunSummary
from hpt.train.loop import pretrain as run_pretrain

KEYWORDS = {flag[2:].replace("-", "_"): key for flag, key in PRETRAIN_FLAGS.items()}
"""`pretrain`'s keyword settings: each command-line flag's name in Python (`--batch-size`: `batch_size`)."""


def pretrain(
    data: str | Path | PretrainConfig | None = None,
    out: str | Path | None = None,
    *,
    config: str | Path | PretrainConfig | None = None,
    callbacks: Sequence[Callback] = (),
    overwrite: bool = False,
    resume: bool = False,
    **settings: Any,
) -> RunSummary:
    """Pretrain as `hpt pretrain` does and return what the run made.

    Args:
        data: the unlabelled images (a folder, a list, shards, a URL), as `--data`.
        out: the run folder; one that holds files needs `overwrite` or `resume`.
        config: a YAML file or a `PretrainConfig` the settings apply over (default: hpt's defaults).
        callbacks: `hpt.Callback`s, called after each step, evaluation, checkpoint and at the finish.
        settings: flags by their Python names (`base`, `method`, `steps`, `batch_size`, `lr`, `monitor_test`, ...)
            and dotted config keys (`**{"mocov2.queue_size": 4096}`).

    Returns:
        A `RunSummary`: the folder, the exported backbone, the step picked and its scores, and `verdict()`, that
        step against the starting point on the monitor's test images.

    `hpt.pretrain(config, out)` (a `PretrainConfig` first, as in 0.7 and before) still runs that config as it is.

    Example::

        import hpt
        result = hpt.pretrain(data="images/", out="runs/first", base="timm:resnet50", steps=500, batch_size=64,
                              monitor_train="labelled/train", monitor_test="labelled/test", **{"optim.lr": 0.01})
        print(result.backbone, result.picked_step, result.verdict())
    """
    if isinstance(data, PretrainConfig):  # the call of 0.7 and before: pretrain(config, out)
        config, data = data, None
    if out is None:
        raise HptError("hpt.pretrain: out= is needed (the run folder)")
    overrides = {"data.path": str(data)} if data is not None else {}
    for name, value in settings.items():
        if "." not in name and name not in KEYWORDS:
            raise HptError(
                f"hpt.pretrain: unknown setting {name!r}; expected one of {', '.join(sorted(KEYWORDS))}, or a "
                "dotted config key (**{'optim.lr': 0.01})"
            )
        overrides[KEYWORDS.get(name, name)] = str(value) if isinstance(value, Path) else value
    chosen = load_config(config, overrides) if overrides or not isinstance(config, PretrainConfig) else config
    return run_pretrain(chosen, Path(out), overwrite=overwrite, resume=resume, callbacks=callbacks)


def evaluate(
    model: str | Path,
    train: str | Path,
    test: str | Path,
    options: EvalOptions | None = None,
    *,
    out: str | Path | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """`hpt eval` as one call: fit the protocol's classifier on `train`'s features, score it on `test`.

    Args:
        model: a run folder, a checkpoint file or a hub name (`timm:NAME`, `torchvision:NAME`).
        train, test: labelled images (one sub-folder per class, a labelled list, or a CSV of 0/1 columns).
        options: an `EvalOptions` the settings apply over (default: its defaults).
        out: where `eval.json` is written (default: beside the model).
        settings: `EvalOptions`' fields by name (`protocol="linear"`, `image_size=64`, `val=...`); an unknown one
            is one `HptError` naming the fields.

    Returns:
        The entry `eval.json` gets for the protocol: its `metrics` (each accuracy with its standard error and 95%
        interval), and the settings, data and model they came from.

    Example::

        import hpt
        result = hpt.evaluate("runs/first", "labelled/train", "labelled/test", protocol="linear")
        print(result["metrics"])
    """
    fields = {field.name for field in dataclasses.fields(EvalOptions)}
    if unknown := sorted(set(settings) - fields):
        raise HptError(f"hpt.evaluate: unknown setting {unknown[0]!r}; expected one of {', '.join(sorted(fields))}")
    chosen = dataclasses.replace(options or EvalOptions(), **settings)
    return run_evaluate(str(model), str(train), str(test), chosen, Path(out) if out is not None else None)


def export_model(
    run: str | Path, format: str = "hub", image_size: int | None = None, out: str | Path | None = None
) -> list[str]:
    """`hpt export` as one call (`format`: `hub`, `onnx` or `torchscript`); the lines it prints, one a file written.

    Args:
        run: a run folder.
        format: `hub` (config.json, model.safetensors, README.md), `onnx` or `torchscript` (one file, checked
            against PyTorch).
        image_size: onnx, torchscript: the input size (default: the run's).
        out: onnx, torchscript: the file (default: in the run folder).

    Example::

        import hpt
        for line in hpt.export_model("runs/first", format="onnx"):
            print(line)
    """
    if format not in ("hub", "onnx", "torchscript"):
        raise HptError(f"hpt.export_model: format {format!r}; expected hub, onnx or torchscript")
    return export_run(str(run), format, image_size, Path(out) if out is not None else None)
