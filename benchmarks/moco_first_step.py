"""MoCo v2's first step, while its queue holds no keys: what should its queries be compared with?

hpt's queue starts empty and only real keys are negatives (since 0.4: `methods/queue.py`), so a run's first step
has no negative at all: its loss is 0.0000 and it trains nothing. Three answers, `mocov2.first_negatives`:
- `none`: that (hpt 0.7's and today's default);
- `in-batch`: the other keys of the first batch, as SimCLR and MoCo v3 compare (only while the queue is empty);
- `random`: MoCo's own code, a queue full of random unit vectors at the start, flushed as keys arrive (a 4096
  queue at batch 64: the first 64 steps).
Each continues MoCo v2 from the ImageNet Lite0 (HPT's case) at 32 px, batch 64, queue 4096, `--steps` steps,
scored (linear probe picked on a held-out fifth of the labelled training split, and kNN) on each target's test
split at step 0, every `--every` steps and the last; `--seeds` seeds a target, the same seeds for every setting,
so a setting is compared with `none` pair by pair (same target, same seed).

    .venv/bin/python benchmarks/moco_first_step.py --out benchmarks/results/moco_first_step   # full: see results.md
    .venv/bin/python benchmarks/moco_first_step.py --quick --out /tmp/moco_first_step         # the suite's: ~20 s
"""

from __future__ import annotations

import argparse

from provenance import header, markdown_header
from study import (
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

SETTINGS = ("none", "in-batch", "random")
"""`mocov2.first_negatives`; the first is today's default, each other is compared with it."""


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for seed in range(args.seeds):
        for name in SETTINGS:
            settings = {**run_settings(args, seed), "mocov2.first_negatives": name}
            folder = args.out / "runs" / target / f"{name}-{seed}"
            run = scored_run(data, str(data / "pretrain"), folder, "full", args.steps, args.every, settings,
                             reuse=args.reuse)  # fmt: skip
            runs[name].append(run)
            print(f"{target} seed {seed} {name}: {curve_text(run['curve'])}", flush=True)
    return {"runs": runs}


def summarise(results: dict) -> dict:
    """Per setting and score: the last step and the first evaluation after step 0 (mean ± sd over every target and
    seed), and each other setting's paired difference from `none` there (points), with its standard error."""
    summary: dict = {}
    targets = results["targets"]
    for name in SETTINGS:
        entry: dict = {}
        for label in SCORES:
            for when, index in (("first", 1), ("last", -1)):
                values = [run["curve"][index][label] for t in targets.values() for run in t["runs"][name]]
                entry[f"{label}_{when}"] = mean_sd(values)
                if name != SETTINGS[0]:
                    pairs = [
                        100 * (run["curve"][index][label] - base["curve"][index][label])
                        for t in targets.values()
                        for run, base in zip(t["runs"][name], t["runs"][SETTINGS[0]], strict=True)
                    ]
                    entry[f"{label}_{when}_minus_none"] = paired_difference(pairs)
        summary[name] = entry
    return summary


def markdown(results: dict, summary: dict, steps: int, every: int) -> str:
    lines = markdown_header("MoCo v2's first step: what its queries are compared with", results)
    lines += [
        f"Over {', '.join(results['targets'])}: mean ± sd of every target's seeds; the difference from `none` pair "
        "by pair (same target, same seed), in points, ± its standard error, and the pairs the setting wins. A "
        "difference under two standard errors is not a finding.",
        "",
        f"| first_negatives | linear, step {every} | kNN, step {every} | linear, step {steps} | kNN, step {steps} |",
        "|---|---|---|---|---|",
    ]
    for name in SETTINGS:
        s = summary[name]
        cells = [cell(s[f"{label}_{when}"]) for when in ("first", "last") for label in SCORES]
        lines.append(f"| {name} | {' | '.join(cells)} |")
        if name != SETTINGS[0]:
            diffs = []
            for when in ("first", "last"):
                for label in SCORES:
                    d = s[f"{label}_{when}_minus_none"]
                    diffs.append(f"{d['mean']:+.2f} ± {d['standard_error']:.2f} ({d['wins']}/{d['pairs']})")
            lines.append(f"| {name} minus none | {' | '.join(diffs)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--reuse", action="store_true", help="read finished runs of the same config")
    seed_arguments(parser)
    target_arguments(parser, ("fashion-mnist", "mnist-5k", "emoji"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.every, args.seeds = 2, 1, 1
        quick_targets(args)
    results = run_targets(header("moco_first_step.py", args), args, run_target)
    summary = summarise(results)
    results["summary"] = summary
    write_results(args.out, results, markdown(results, summary, args.steps, args.every))


if __name__ == "__main__":
    main()
