"""The `hpt` command line: `hpt pretrain | chain | eval | select | report | inspect | export | embed`.

Flags are a thin diff over the typed config (`hpt.config`): each flag names one config key, `--set KEY=VALUE`
reaches any other, and `--config FILE` supplies a YAML diff beneath them. Any `HptError` is printed as one
line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hpt.config import PretrainConfig, parse_yaml
from hpt.core.run_files import CONFIG
from hpt.errors import HptError
from hpt.train.guard import Stopped

# flag -> config key; the type is the config's, so values are parsed there.
PRETRAIN_FLAGS: dict[str, str] = {
    "--data": "data.path",
    "--image-size": "data.image_size",
    "--workers": "data.num_workers",
    "--base": "model.base",
    "--backbone": "model.backbone",
    "--init": "model.init",
    "--method": "method",
    "--teacher": "distill.teacher",
    "--views": "views.policy",
    "--intensity": "data.intensity",
    "--bands": "data.bands",
    "--steps": "train.steps",
    "--batch-size": "train.batch_size",
    "--seed": "train.seed",
    "--accelerator": "train.accelerator",
    "--devices": "train.devices",
    "--num-nodes": "train.num_nodes",
    "--strategy": "train.strategy",
    "--precision": "train.precision",
    "--logger": "train.loggers",
    "--lr": "optim.lr",
    "--weight-scaling": "transfer.weight_scaling",
    "--filter-selection": "transfer.filter_selection",
    "--monitor-train": "monitor.train",
    "--monitor-test": "monitor.test",
    "--monitor-val": "monitor.val",
    "--monitor-every": "monitor.every",
}


def whole_number(minimum: int):
    def parse(text: str) -> int:
        value = int(text) if text.lstrip("-").isdigit() else None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}")
        return value

    return parse


positive_int, count = whole_number(1), whole_number(0)


def intensity(text: str) -> Any:
    from hpt.config import intensity_setting

    try:
        return intensity_setting(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


REQUIRED = {"--data": "required, unless --config or the folder's config.yaml (--resume) names it"}
"""Flags a run cannot go without, though a config file may give them instead."""


def flag_help(key: str, default: str) -> str:
    """A pretrain flag's help from its config field: the first sentence of its docstring, its choices and
    `default` (what is said of it), so that `--help` and the configuration reference cannot disagree."""
    section, _, name = key.rpartition(".")
    model = type(getattr(PretrainConfig(), section)) if section else PretrainConfig
    field = model.model_fields[name]
    text = " ".join((field.description or "").split())
    first = re.split(r"\.\s+(?=[A-Z])", text)[0].rstrip(".") if text else key  # not at "e.g. `x`"
    choices = _choices(field.annotation)
    said = f"{first} [{key}" + (f"; one of {', '.join(choices)}" if choices else "") + f"; {default}]"
    return said.replace("%", "%%")


def _choices(annotation: Any) -> list[str]:
    """The values a Literal-typed field takes (nested in unions and lists too)."""
    if typing.get_origin(annotation) is typing.Literal:
        return [str(value) for value in typing.get_args(annotation)]
    return [choice for arg in typing.get_args(annotation) for choice in _choices(arg)]


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def pretrain_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {key: getattr(args, key) for key in PRETRAIN_FLAGS.values() if getattr(args, key) is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HptError(f"--set '{item}': expected KEY=VALUE, e.g. optim.lr=0.01")
        overrides[key] = parse_yaml(value, f"--set '{item}'") if value else None
    return overrides


def build_parser() -> argparse.ArgumentParser:
    from hpt.version import __version__

    parser = OneLineParser(prog="hpt", description="Hierarchical self-supervised pretraining from a pretrained base.")
    parser.add_argument("--version", action="version", version=f"hpt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, command in COMMANDS.items():
        command.arguments(commands.add_parser(name, help=command.help))
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].handle(args)


@dataclass(frozen=True)
class Command:
    """One subcommand: its one-line help, its flags, and the function that runs it (returns the exit code)."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handle: Callable[[argparse.Namespace], int]


def pretrain_arguments(pretrain: argparse.ArgumentParser) -> None:
    pretrain.add_argument("--out", type=Path, help="run folder to write (required, except with --print-config)")
    pretrain.add_argument("--config", type=Path, help="YAML file: a diff over the defaults")
    defaults = _flat(PretrainConfig().to_dict())
    for flag, key in PRETRAIN_FLAGS.items():
        default = REQUIRED.get(flag, f"default: {defaults[key]}")
        pretrain.add_argument(flag, dest=key, metavar=flag[2:].replace("-", "_").upper(), help=flag_help(key, default))
    pretrain.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other config key, e.g. --set mocov2.queue_size=4096",
    )
    pretrain.add_argument("--overwrite", action="store_true", help="replace the files of an existing run folder")
    pretrain.add_argument("--resume", action="store_true", help="continue a cut-off run from its last checkpoint")
    pretrain.add_argument(
        "--allow-data-change",
        action="store_true",
        help="with --resume: continue even if --data changed since the run started (recorded in its provenance)",
    )
    pretrain.add_argument(
        "--allow-modified",
        action="store_true",
        help="use a --base, --teacher or --resume checkpoint of hpt's whose sha256 no longer matches (recorded)",
    )
    pretrain.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (defaults, --config, flags and --set) as YAML and exit",
    )
    pretrain.add_argument(
        "--auto",
        action="store_true",
        help="short pilots of auto.recipes from --base, ranked by the monitor; the best runs in full",
    )


def pretrain_command(args: argparse.Namespace) -> int:
    from hpt.config import load_config

    if args.out is None and not args.print_config:
        print("hpt pretrain: error: the following arguments are required: --out", file=sys.stderr)
        return 2
    # --resume needs nothing but the folder: its config.yaml is the starting point, and any flag given must
    # agree with it (check_run_dir refuses a difference, naming the key)
    folder_config = args.out / CONFIG if args.out and args.resume and args.config is None else None
    base = folder_config if folder_config is not None and folder_config.is_file() else args.config
    config = load_config(base, pretrain_overrides(args))
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    if args.allow_data_change and (args.auto or not args.resume):
        raise HptError("--allow-data-change goes with --resume (and without --auto)")
    if args.allow_modified and args.auto:
        raise HptError("--allow-modified does not go with --auto: restore the modified file, or run without --auto")
    from hpt.train.precheck import precheck

    precheck(config, args.out, args.overwrite, args.resume)  # before seconds of imports
    from hpt.core.distributed import leave_process_group
    from hpt.train.auto import pretrain_auto
    from hpt.train.loop import pretrain

    if args.auto:
        pretrain_auto(config, args.out, overwrite=args.overwrite, resume=args.resume)
    else:
        pretrain(
            config, args.out, args.overwrite, args.resume, allow_data_change=args.allow_data_change,
            allow_modified=args.allow_modified,
        )  # fmt: skip
    leave_process_group()  # the run may have been several processes
    return 0


def version_command(args: argparse.Namespace) -> int:
    from hpt.version import __version__

    print(f"hpt {__version__}")
    return 0


def chain_arguments(chain: argparse.ArgumentParser) -> None:
    chain.add_argument("chain", type=Path, help="chain YAML file (see hpt.pipeline.chain)")
    chain.add_argument("--out", required=True, type=Path, help="folder for the stages' run folders")
    chain.add_argument("--base", help="where the first stage starts (overrides the chain file's base)")


def chain_command(args: argparse.Namespace) -> int:
    from hpt.core.distributed import leave_process_group
    from hpt.pipeline.chain import run_chain

    run_chain(args.chain, args.out, args.base)
    leave_process_group()  # the stages may have been several processes
    return 0


def select_arguments(select: argparse.ArgumentParser) -> None:
    select.add_argument("--candidates", nargs="+", required=True, help="bases, checkpoints or run folders")
    select.add_argument("--data", required=True, help="labelled target images (one sub-folder per class)")
    select.add_argument("--backbone", help="architecture of foreign checkpoints among the candidates")
    select.add_argument("--image-size", type=positive_int, default=224)
    select.add_argument("--out", type=Path, help="also write the ranking as JSON here")


def select_command(args: argparse.Namespace) -> int:
    from hpt.core.atomic import check_writable_file, write_text_atomic
    from hpt.data.screen import TooManyUnusable, listing_beside
    from hpt.eval.select import describe as describe_ranking
    from hpt.eval.select import rank_candidates

    if args.out:
        check_writable_file(args.out)  # before the ranking, not after it
    try:
        result = rank_candidates(args.candidates, args.data, args.backbone, args.image_size)
    except TooManyUnusable as refused:  # every file listed beside the ranking asked for
        raise refused.listed_in(listing_beside(args.out)) if args.out else refused from None
    for row in result["ranking"]:
        if "warning" in row:
            print(f"hpt select: {row['candidate']}: {row['warning']}", file=sys.stderr)
    print(describe_ranking(result))
    if args.out:
        write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    return 0


def report_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("runs", nargs="+", type=Path, help="run folders")
    report.add_argument("--out", required=True, type=Path, help="folder for report.md and the plots")


def report_command(args: argparse.Namespace) -> int:
    from hpt.report.build import build_report

    print(build_report(args.runs, args.out))
    return 0


def inspect_arguments(inspect: argparse.ArgumentParser) -> None:
    inspect.add_argument(
        "models", nargs="+", metavar="model", help="run folder or .safetensors file; two: also which packages differ"
    )


def inspect_command(args: argparse.Namespace) -> int:
    from hpt.checkpoints.lineage import describe, environments_compared

    if len(args.models) > 2:
        raise HptError(f"hpt inspect takes one model, or two to compare; got {len(args.models)}")
    print("\n\n".join(describe(model) for model in args.models))
    if len(args.models) == 2:
        print("\n" + environments_compared(*args.models))
    return 0


def export_arguments(export: argparse.ArgumentParser) -> None:
    export.add_argument("model", help="run folder")
    export.add_argument(
        "--format",
        default="hub",
        choices=["hub", "onnx", "torchscript"],
        help="hub: config.json, model.safetensors, README.md (rewritten; a run writes them itself); onnx or "
        "torchscript: one file, checked against PyTorch (default hub)",
    )
    export.add_argument("--image-size", type=positive_int, help="onnx, torchscript: input size (default: the run's)")
    export.add_argument("--out", type=Path, help="onnx, torchscript: the file (default: in the run folder)")
    export.add_argument(
        "--with-preprocessing",
        action="store_true",
        help="onnx, torchscript: take N x S x S x C raw arrays (--raw-type) and apply the run's bands, intensity "
        "window, 8-bit rounding and normalisation inside (written as raw-backbone.*)",
    )
    export.add_argument("--raw-type", help="with --with-preprocessing: your files' sample type (uint8, uint16, ...)")
    export.add_argument(
        "--raw-bands", type=positive_int, help="with --with-preprocessing: bands per pixel of your arrays (default: "
        "the highest band the run takes)"
    )  # fmt: skip


def export_command(args: argparse.Namespace) -> int:
    from hpt.export.command import export_run
    from hpt.export.preprocessing import RAW_TYPES

    if args.with_preprocessing and not args.raw_type:
        raise HptError(f"--with-preprocessing needs --raw-type: your files' sample type, one of {', '.join(RAW_TYPES)}")
    if (args.raw_type or args.raw_bands) and not args.with_preprocessing:
        raise HptError("--raw-type and --raw-bands describe --with-preprocessing's input: add --with-preprocessing")
    raw_type = args.raw_type if args.with_preprocessing else None
    print("\n".join(export_run(args.model, args.format, args.image_size, args.out, raw_type, args.raw_bands)))
    return 0


def embed_arguments(embed: argparse.ArgumentParser) -> None:
    embed.add_argument("models", nargs="+", help="run folders, checkpoint files or hub names, drawn side by side")
    embed.add_argument("--data", required=True, help="images (a folder; one sub-folder per class colours the map)")
    embed.add_argument(
        "--out", required=True, type=Path, help="folder for NAME.npy, paths.txt, map.png, neighbours.png"
    )
    embed.add_argument("--backbone", help="architecture of foreign checkpoints (else found from their keys)")
    embed.add_argument("--image-size", type=positive_int, help="default: each model's own, else 224")
    embed.add_argument("--queries", type=positive_int, default=8, help="query images in neighbours.png (default 8)")
    embed.add_argument("--neighbours", type=positive_int, default=8, help="neighbours of each query (default 8)")


def embed_command(args: argparse.Namespace) -> int:
    from hpt.eval.embed import embed

    written = embed(args.models, args.data, args.out, args.backbone, args.image_size, args.queries, args.neighbours)
    print("\n".join(f"wrote {path}" for path in written))
    used = json.loads((args.out / "preprocessing.json").read_text())
    for name, seen in used.items():  # every command says what it used
        print(f"hpt embed: {name}: {seen['image_size']} px, mean/std {seen['source']}", file=sys.stderr)
        if "warning" in seen:
            print(f"hpt embed: {name}: {seen['warning']}", file=sys.stderr)
    return 0


def eval_arguments(evaluate: argparse.ArgumentParser) -> None:
    evaluate.add_argument("model", help="run folder, checkpoint file, or hub name (timm:NAME, torchvision:NAME)")
    evaluate.add_argument("--train", required=True, help="labelled images the classifier is fitted on")
    evaluate.add_argument("--test", required=True, help="labelled images it is scored on")
    evaluate.add_argument("--protocol", default="knn", help="knn (default), linear or finetune")
    evaluate.add_argument("--labels", default="10%", help="finetune: labels used, P%%, N-shot or all (default 10%%)")
    evaluate.add_argument("--finetune-steps", type=positive_int, default=100, help="finetune: SGD steps (default 100)")
    evaluate.add_argument(
        "--finetune-lr",
        type=positive_float,
        default=0.001,
        help="finetune: backbone learning rate; the head's is 100x (default 0.001)",
    )
    evaluate.add_argument("--val", help="labelled validation images (linear: chooses the weight decay)")
    evaluate.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="without --val: this share of each training class is held out (default 0.2)",
    )
    evaluate.add_argument("--backbone", help="architecture of a foreign checkpoint, e.g. timm:tf_efficientnet_lite0")
    evaluate.add_argument("--image-size", type=positive_int, help="default: the run's own, else 224")
    evaluate.add_argument(
        "--intensity",
        type=intensity,
        help="high-bit images: auto, full-range, per-image or LOW,HIGH (default: the run's own window, else auto)",
    )
    evaluate.add_argument("--batch-size", type=positive_int, default=256)
    evaluate.add_argument("--workers", type=count, help="data-loading processes (default: up to 4)")
    evaluate.add_argument("--out", type=Path, help="where to write eval.json (default: beside the model)")
    evaluate.add_argument(
        "--allow-overlap",
        action="store_true",
        help="score splits that share files by content (compared by size and sha256; refused without it)",
    )


def eval_command(args: argparse.Namespace) -> int:
    from hpt.eval.finetune import FinetuneSettings
    from hpt.eval.runner import EvalOptions, evaluate
    from hpt.eval.uncertainty import with_error_bars

    finetune = FinetuneSettings(labels=args.labels, steps=args.finetune_steps, lr=args.finetune_lr, seed=0)
    options = EvalOptions(
        args.protocol,
        args.backbone,
        args.image_size,
        args.batch_size,
        args.workers,
        val=args.val,
        val_fraction=args.val_fraction,
        finetune=finetune,
        intensity=args.intensity,
        allow_overlap=args.allow_overlap,
    )
    result = evaluate(args.model, args.train, args.test, options, args.out)
    for note in result["notes"]:
        print(f"hpt eval: {note}", file=sys.stderr)
    overlap = "; splits share files, allowed by --allow-overlap" if result["settings"].get("overlaps") else ""
    print(f"{args.model}: {with_error_bars(result['metrics'])}  (± one standard error; Wilson's 95% interval{overlap})")
    return 0


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


COMMANDS: dict[str, Command] = {
    "pretrain": Command(
        "continue self-supervised pretraining on a folder of images", pretrain_arguments, pretrain_command
    ),
    "version": Command("print hpt's version (also: hpt --version)", _no_arguments, version_command),
    "chain": Command("run a chain of stages: base -> source -> ... -> target", chain_arguments, chain_command),
    "select": Command(
        "rank candidate starting points on your labelled target images", select_arguments, select_command
    ),
    "report": Command("report.md and PNG plots over runs: table, curves, speed-up", report_arguments, report_command),
    "inspect": Command("print the lineage of a run or checkpoint back to its base", inspect_arguments, inspect_command),
    "export": Command(
        "write a run's backbone for downstream tools: hub, onnx, torchscript", export_arguments, export_command
    ),
    "embed": Command(
        "features of every image, a 2-D map and nearest neighbours, per model", embed_arguments, embed_command
    ),
    "eval": Command("evaluate a run, checkpoint or hub model on labelled images", eval_arguments, eval_command),
}
"""Every subcommand, in the order `hpt --help` lists them."""


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except HptError as exc:
        print(f"hpt: error: {exc}", file=sys.stderr)
        return 2
    except Stopped as stop:  # a stop signal: the run saved its step and can be resumed
        if stop.speaks:
            print(f"hpt: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("hpt: interrupted", file=sys.stderr)
        return 130
