"""MoCo v2 from scratch on one process: does it learn, and against which random start?

The convergence and robustness studies saw MoCo v2 from scratch fall from ~58% to ~20% linear accuracy within 25
steps and read it as collapse. This study separates the two things that happen in those steps:
- the network's BatchNorm statistics move from their initial values (mean 0, variance 1: in evaluation mode every
  BatchNorm is then close to the identity) to the data's. A *calibration* run isolates that: the same random
  network trained for 25 steps at a learning rate of 1e-9, so only its BatchNorm running statistics change
  (every run of this study sets `transfer.estimate_batch_norm_first: false`: since 0.5 a run from scratch
  estimates them on the target before step 0, which is what this study found it should do);
- the weights learn. The MoCo run with hpt's defaults is scored against both random starts: "BN as initialised"
  (its own step 0, what the studies called the random start) and "BN calibrated" (the network that training
  actually starts from, once evaluation uses statistics of the data).
Two settings, each `--seeds` seeds: hpt's defaults (since 0.4: only real keys are negatives, and shuffling BN
emulated on one process in slices of 64 images, `mocov2.bn_splits`) and the same without the emulation
(`bn_splits: 1`). Backbone: EfficientNet-Lite0 from random weights, 32 px, batch 64, queue 4096, as the
convergence study; targets Fashion-MNIST (when installed) and MNIST-5k.

    .venv/bin/python benchmarks/moco_scratch.py --out benchmarks/results/moco_scratch   # full: ~55 min, 2 cores*
    .venv/bin/python benchmarks/moco_scratch.py --quick --out /tmp/moco_scratch         # the suite's: ~30 s

* measured while another study shared the 2 cores.
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

SETTINGS = {
    "hpt defaults": {},
    "without emulated shuffling BN": {"mocov2.bn_splits": 1},
}
CALIBRATION_LR = 1e-9
"""The calibration run's learning rate: its weights do not move; its `--calibration-steps` training-mode steps
move BatchNorm's running statistics (25: 1 - 0.9^25 = 93% of the way to the data's)."""


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    images = str(data / "pretrain")
    runs: dict[str, list[dict]] = {"calibration": [], **{name: [] for name in SETTINGS}}
    for seed in range(args.seeds):
        # step 0: the network as initialised, as this study ran
        settings = {**run_settings(args, seed), "transfer.estimate_batch_norm_first": False}
        folder = args.out / "runs" / target
        steps = args.calibration_steps
        calibration = {**settings, "optim.lr": CALIBRATION_LR}
        run = scored_run(data, images, folder / f"calibration-{seed}", "scratch", steps, steps, calibration)
        runs["calibration"].append(run)
        print(f"{target} seed {seed} calibration: {curve_text(run['curve'])}", flush=True)
        for name, extra in SETTINGS.items():
            where = folder / f"{name.replace(' ', '-')}-{seed}"
            run = scored_run(data, images, where, "scratch", args.steps, args.every, {**settings, **extra})
            runs[name].append(run)
            print(f"{target} seed {seed} {name}: {curve_text(run['curve'])}", flush=True)
    return {"runs": runs, "summary": summarise(runs)}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Per score: the two random starts and each setting's last and best-after-step-0 accuracy (mean and sd over
    seeds), and in how many seeds its last step beats each random start."""
    initial = {label: [r["curve"][0][label] for r in runs["calibration"]] for label in SCORES}
    calibrated = {label: [r["curve"][-1][label] for r in runs["calibration"]] for label in SCORES}
    summary: dict = {
        "random, BN as initialised": {label: mean_sd(v) for label, v in initial.items()},
        "random, BN calibrated": {label: mean_sd(v) for label, v in calibrated.items()},
    }
    for name in SETTINGS:
        entry: dict = {}
        for label in SCORES:
            last = [r["curve"][-1][label] for r in runs[name]]
            trained = [max(c[label] for c in r["curve"][1:]) for r in runs[name]]
            entry[label] = {
                "last": mean_sd(last),
                "best_after_step_0": mean_sd(trained),
                "last_beats_calibrated": sum(a > b for a, b in zip(last, calibrated[label])),
                "last_beats_initialised": sum(a > b for a, b in zip(last, initial[label])),
            }
        entry["seeds"] = len(runs[name])
        summary[name] = entry
    return summary


def plot(target: str, result: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    summary = result["summary"]
    for axis, label in zip(axes, SCORES):
        for name in SETTINGS:
            band(axis, result["runs"][name], label, name)
        for start, style in (("random, BN as initialised", ":"), ("random, BN calibrated", "--")):
            axis.axhline(summary[start][label]["mean"], color="grey", linestyle=style, label=start)
        axis.set_title(f"{target}: {label} accuracy, MoCo v2 from scratch")
        axis.set_xlabel("pretraining steps (batch 64)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(figure, path)


def markdown(results: dict) -> str:
    lines = markdown_header("MoCo v2 from scratch: does it learn, and against which random start?", results)
    for target, result in results["targets"].items():
        s = result["summary"]
        lines += [f"## {target}", "", "| | linear | kNN (k=20) |", "|---|---|---|"]
        for start in ("random, BN as initialised", "random, BN calibrated"):
            lines.append(f"| {start} | {cell(s[start]['linear'])} | {cell(s[start]['kNN'])} |")
        for name in SETTINGS:
            r, n = s[name], s[name]["seeds"]
            for what, key in (("last step", "last"), ("best after step 0", "best_after_step_0")):
                lines.append(f"| {name}, {what} | {cell(r['linear'][key])} | {cell(r['kNN'][key])} |")
            beats = [
                f"{r[label]['last_beats_calibrated']}/{n} over BN calibrated, "
                f"{r[label]['last_beats_initialised']}/{n} over BN as initialised"
                for label in SCORES
            ]
            lines.append(f"| {name}, last step beats the random start in | {beats[0]} | {beats[1]} |")
        lines += ["", "Mean ± standard deviation over seeds.", "", f"![{target}](moco_scratch_{target}.png)", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    seed_arguments(parser)
    parser.add_argument("--calibration-steps", type=int, default=25)
    target_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.every, args.seeds = 4, 2, 2
        quick_targets(args)
        args.calibration_steps = 2
    results = run_targets(header("moco_scratch.py", args), args, run_target, plot, "moco_scratch")
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
