"""Two settings compared run by run: finished `method_lr.py` studies (one learning rate per method in each), the
runs of side A against those of side B paired by method, target and seed (the same base, images and seed: only
the setting differs), so that what the seeds and targets share cancels.

For each method in both sides, and each score (last-step linear and kNN on the labelled test split, linear on the
monitor's validation split): A minus B over the pairs, mean ± sd, its standard error, a 95% interval (Student's t
over the pairs) and the pairs A wins; each side's own change from the base beside it. A difference whose interval
holds 0 is not a finding. `--held-out-from 1` adds the same over seeds 1 and up: a study's seed-0 runs picked
its rates, so those pairs are not scored on what picked them. Nothing is run: the runs are the studies' own.

    # the sides: each optimiser at each method's own rate, 3 seeds (seed 0's runs linked in from method_lr and
    # method_lr_adamw, with their data folders, and read with --reuse: ~30 min on 2 cores for the other 16)
    .venv/bin/python benchmarks/method_lr.py --seeds 3 --reuse --methods mocov2 --lrs 0.03 \
        --out benchmarks/results/optimisers/sgd-mocov2
    .venv/bin/python benchmarks/method_lr.py --seeds 3 --reuse --methods simclr --lrs 0.01 \
        --out benchmarks/results/optimisers/sgd-simclr
    .venv/bin/python benchmarks/method_lr.py --seeds 3 --reuse --methods mocov2 simclr --lrs 0.0025 \
        --optimiser adamw --out benchmarks/results/optimisers/adamw
    # BYOL's sides (data and runs linked to method_lr_byol's and method_lr_adamw_byol_swav's: 13 min for 8 runs)
    .venv/bin/python benchmarks/method_lr.py --seeds 3 --reuse --methods byol --lrs 0.3 \
        --out benchmarks/results/optimisers/sgd-byol
    .venv/bin/python benchmarks/method_lr.py --seeds 3 --reuse --methods byol --lrs 0.0025 --optimiser adamw \
        --out benchmarks/results/optimisers/adamw-byol
    cd benchmarks && ../.venv/bin/python paired.py --names AdamW SGD \
        --a results/optimisers/adamw results/optimisers/adamw-byol \
        --b results/optimisers/sgd-mocov2 results/optimisers/sgd-simclr results/optimisers/sgd-byol \
        --held-out-from 1 --out results/optimisers
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from provenance import header, markdown_header
from scipy.stats import t as student
from study import mean_sd, paired_difference, write_results

SCORES = {
    "linear": lambda run: run["curve"][-1]["linear"],
    "kNN": lambda run: run["curve"][-1]["kNN"],
    "linear_validation": lambda run: run["validation"]["linear"]["last"],
}
"""What each pair compares: a run's last step on the test split (linear probe, kNN) and on the validation split."""


def side(folders: list[Path]) -> dict[str, dict]:
    """{method: {"lr", "runs": {(target, seed): run}, "study"}} over the method_lr studies in `folders`."""
    methods: dict[str, dict] = {}
    for folder in folders:
        if not (folder / "results.json").is_file():
            raise ValueError(f"{folder} holds no results.json; expected a finished method_lr.py study")
        results = json.loads((folder / "results.json").read_text())
        for target, result in results["targets"].items():
            for method, by_lr in result["runs"].items():
                if len(by_lr) != 1:
                    raise ValueError(f"{folder} has {len(by_lr)} learning rates of {method}; expected one")
                ((lr, runs),) = by_lr.items()
                entry = methods.setdefault(method, {"lr": lr, "runs": {}, "study": str(folder)})
                entry["runs"].update({(target, seed): run for seed, run in enumerate(runs)})
    return methods


def compare(a: dict, b: dict, first_seed: int = 0) -> dict:
    """A minus B over the (target, seed) pairs both sides ran, seeds from `first_seed`, for each score."""
    keys = sorted(k for k in a["runs"].keys() & b["runs"].keys() if k[1] >= first_seed)
    for key in keys:  # the same base scored on the same labelled images at step 0, and as many steps: else no pair
        x, y = a["runs"][key], b["runs"][key]
        if x["curve"][0] != y["curve"][0] or x["steps"] != y["steps"]:
            raise ValueError(f"{a['study']} and {b['study']} differ at step 0 or in steps on {key}: not a pair")
    summary: dict = {"pairs": len(keys), "lr": {"a": a["lr"], "b": b["lr"]}}
    for label, score in SCORES.items():
        d = paired_difference([score(a["runs"][k]) - score(b["runs"][k]) for k in keys])
        half = float(student.ppf(0.975, len(keys) - 1)) * d["standard_error"] if len(keys) > 1 else math.inf
        low, high = d["mean"] - half, d["mean"] + half
        summary[label] = {**d, "interval": [low, high], "finding": not low <= 0 <= high}
    for name, runs in (("a", a["runs"]), ("b", b["runs"])):
        summary[f"change_{name}"] = mean_sd(
            [runs[k]["curve"][-1]["linear"] - runs[k]["curve"][0]["linear"] for k in keys]
        )
    return summary


def markdown(results: dict) -> str:
    a, b = results["names"]
    lines = markdown_header(f"{a} against {b}, run by run", results)
    lines += [
        f"Side {a}: {', '.join(results['a'])}; side {b}: {', '.join(results['b'])} (each a method_lr.py study, its",
        "command on its own page). Pairs: the same method, target and seed. Points: mean ± sd of "
        f"{a} minus {b} over the pairs, the standard error, the 95% interval (Student's t), and the pairs {a} wins.",
        "",
        *table(results["summary"], a, b),
    ]
    if "held_out" in results:
        lines += [
            "",
            f"The same over seeds {results['held_out_from']} and up only: pairs no rate was picked on (each study's "
            "seed-0 runs picked its rates, which favours the side whose rate was picked among more rates).",
            "",
            *table(results["held_out"], a, b),
        ]
    return "\n".join(lines) + "\n"


def table(summary: dict, a: str, b: str) -> list[str]:
    lines = [
        f"| method | lr {a} / {b} | pairs | linear (test) | kNN (test) | linear (validation) | "
        f"change from the base, linear: {a} / {b} |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, s in summary.items():
        cells = [
            f"{100 * d['mean']:+.1f} ± {100 * d['sd']:.1f} (SE {100 * d['standard_error']:.1f}; "
            f"[{100 * d['interval'][0]:+.1f}, {100 * d['interval'][1]:+.1f}]; {d['wins']}/{s['pairs']})"
            + ("" if d["finding"] else ", 0 inside")
            for d in (s[label] for label in SCORES)
        ]
        lines.append(
            f"| {method} | {s['lr']['a']} / {s['lr']['b']} | {s['pairs']} | "
            + " | ".join(cells)
            + f" | {100 * s['change_a']['mean']:+.1f} / {100 * s['change_b']['mean']:+.1f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, nargs="+", required=True, help="method_lr.py result folders of side A")
    parser.add_argument("--b", type=Path, nargs="+", required=True, help="those of side B")
    parser.add_argument("--names", nargs=2, default=["A", "B"], metavar=("A", "B"))
    parser.add_argument("--held-out-from", type=int, help="also compare only the seeds from this one on")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        a, b = side(args.a), side(args.b)
        methods = [m for m in a if m in b]
        if not methods:
            raise ValueError(f"no method is in both sides: {sorted(a)} against {sorted(b)}")
        summary = {m: compare(a[m], b[m]) for m in methods}
        held_out = {} if args.held_out_from is None else {m: compare(a[m], b[m], args.held_out_from) for m in methods}
    except ValueError as error:
        parser.error(str(error))
    results = {
        **header("paired.py", args),
        "names": args.names, "a": [str(f) for f in args.a], "b": [str(f) for f in args.b],
        "summary": summary,
    }  # fmt: skip
    if args.held_out_from is not None:
        results["held_out_from"], results["held_out"] = args.held_out_from, held_out
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
