"""Why BYOL collapses under LARS when it continues from a base: whose steps the trust ratio shrinks.

BYOL from the real ImageNet EfficientNet-Lite0 (100 steps, batch 64, 32 px) under LARS at 0.3 per 256, where it
collapsed on both targets (as at every rate from 0.03 to 3.0: results/method_lr_lars, method_lr_lars_wide), three
ways (`--variants`):

    lars             as hpt trains it: each weight matrix's step scaled by the trust ratio, biases and norms plain
    heads-plain      the projector's and the predictor's weight matrices take plain steps too
    predictor-plain  only the predictor's weight matrices do

A plain step is LARS's own for the tensors it excludes: momentum SGD at the learning rate, without weight decay
(hpt/core/lars.py). Each run is scored on the test split every `--every` steps (linear probe, kNN) beside the
embedding's spread over each logging window (metrics.jsonl's `embedding_spread`: about 1 spread out, 0 one point),
and at its end by how far each kind of tensor moved from where it started, |w - w0| / |w0| (median and largest):
the backbone's weight matrices, its biases and norms, the projector's and the predictor's weight matrices. The
variants swap the optimiser's parameter groups (`hpt.train.build.param_groups`) in this process: a diagnostic,
not an option hpt has.

    .venv/bin/python benchmarks/lars_byol.py --out benchmarks/results/lars_byol          # 6 min on 2 cores
    .venv/bin/python benchmarks/lars_byol.py --quick --out /tmp/lars_byol                # the suite's: ~15 s
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from provenance import header, markdown_header
from study import (
    curve_text,
    quick_targets,
    run_settings,
    run_targets,
    scored_run,
    study_arguments,
    target_arguments,
    target_data,
    write_results,
)
from torch import nn

from hpt.checkpoints.files import read_tensors
from hpt.core.param_groups import param_groups
from hpt.core.run_files import CHECKPOINT, read_metrics

VARIANTS: dict[str, tuple[str, ...]] = {
    "lars": (),
    "heads-plain": ("projector.", "predictor."),
    "predictor-plain": ("predictor.",),
}
"""Each variant: the prefixes of the parameters whose weight matrices take plain steps (none: hpt's LARS)."""
KINDS = ["backbone weights", "backbone biases and norms", "projector weights", "predictor weights"]


def kind(name: str, param: torch.Tensor) -> str | None:
    """Which of `KINDS` the trained tensor `name` is (None: the heads' biases and norms, not reported)."""
    part = name.split(".", 1)[0]
    if part == "backbone":
        return "backbone weights" if param.ndim > 1 else "backbone biases and norms"
    if part in ("projector", "predictor") and param.ndim > 1:
        return f"{part} weights"
    return None


class PlainGroups:
    """`param_groups` with the weight matrices under `plain` moved into a group LARS does not adapt (nor decay), and
    each trained tensor's value when the optimiser is built (the base's, the heads' initial) kept in `start`."""

    def __init__(self, plain: tuple[str, ...]) -> None:
        self.plain, self.start = plain, {}

    def __call__(self, module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.start = {n: p.detach().clone() for n, p in named}
        groups = param_groups(module, weight_decay)
        plain = [p for n, p in named if n.startswith(self.plain) and p.ndim > 1]
        if not plain:
            return groups
        ids = {id(p) for p in plain}
        for group in groups:  # out of whichever group holds them, not by the groups' order
            group["params"] = [p for p in group["params"] if id(p) not in ids]
        return [*groups, {"params": plain, "weight_decay": 0.0, "lars_exclude": True, "decays": False}]


def movement(start: dict[str, torch.Tensor], run: Path) -> dict[str, dict[str, float]]:
    """Per kind of tensor, the median and largest |w - w0| / |w0| between `start` and the run's last checkpoint."""
    end, _ = read_tensors(run / CHECKPOINT)
    moved: dict[str, list[float]] = {k: [] for k in KINDS}
    for name, first in start.items():
        label, norm = kind(name, first), float(torch.linalg.vector_norm(first))
        if label is not None and norm > 0:
            moved[label].append(float(torch.linalg.vector_norm(end[name].float() - first)) / norm)
    return {k: {"median": statistics.median(v), "largest": max(v)} for k, v in moved.items() if v}


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    runs = {}
    for variant in args.variants:
        settings = {"method": "byol", "optim.name": "lars", "optim.lr": args.lr, **run_settings(args, 0)}
        folder = args.out / "runs" / target / variant
        groups = PlainGroups(VARIANTS[variant])
        with mock.patch("hpt.train.build.param_groups", groups):
            run = scored_run(data, str(data / "pretrain"), folder, "full", args.steps, args.every, settings)
        run["spread"] = [{"step": m["step"], "spread": m["embedding_spread"]} for m in read_metrics(folder)]
        run["movement"] = movement(groups.start, folder)
        runs[variant] = run
        print(f"{target} {variant}: {curve_text(run['curve'])}", flush=True)
    return {"runs": runs}


def markdown(results: dict, args: argparse.Namespace) -> str:
    lines = markdown_header("BYOL under LARS from a base: whose steps the trust ratio shrinks", results)
    lines += [
        f"BYOL from the ImageNet Lite0, LARS at {args.lr} per 256 (batch {args.batch_size}, {args.steps} steps, "
        f"{args.image_size} px, seed 0). Linear / kNN accuracy on the test split and the embedding's spread (1 spread "
        "out, 0 one point) by step; then how far each kind of tensor moved from where it started, |w - w0| / |w0|, "
        "median (largest).",
        "",
    ]
    for target, result in results["targets"].items():
        runs = result["runs"]
        steps = [c["step"] for c in next(iter(runs.values()))["curve"]]
        lines += [f"## {target}", "", "| variant | " + " | ".join(f"step {s}" for s in steps) + " |"]
        lines.append("|---|" + "---|" * len(steps))
        for variant, run in runs.items():
            spread = {s["step"]: s["spread"] for s in run["spread"]}
            cells = [
                f"{c['linear']:.1%} / {c['kNN']:.1%}" + (f"; {spread[c['step']]:.2f}" if c["step"] in spread else "")
                for c in run["curve"]
            ]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        kinds = [k for k in KINDS if k in next(iter(runs.values()))["movement"]]
        lines += ["", "| variant | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for variant, run in runs.items():
            cells = [f"{run['movement'][k]['median']:.3g} ({run['movement'][k]['largest']:.3g})" for k in kinds]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=10, help="steps between scorings")
    parser.add_argument("--lr", type=float, default=0.3, help="LARS's learning rate per 256 images")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    target_arguments(parser, ("fashion-mnist",))
    args = parser.parse_args()
    if args.quick:  # hpt's LARS beside the predictor on plain steps, scored at the start and the end
        args.steps, args.every, args.variants = 4, 4, ["lars", "predictor-plain"]
        quick_targets(args)
    results = run_targets(header("lars_byol.py", args), args, run_target)
    write_results(args.out, results, markdown(results, args))


if __name__ == "__main__":
    main()
