"""The learning rate of each method when it continues from a base, measured: hpt's per-method defaults.

MoCo v2, SimCLR, BYOL, SwAV and DINO (`--methods`: any of them) continue from the real ImageNet EfficientNet-Lite0
(hpt's defaults otherwise: `--init full`, the base's BN statistics frozen) on Fashion-MNIST (when installed) and
MNIST-5k, at `--lrs` learning rates (per 256 images, scaled linearly to batch 64), `--seeds` seeds each, `--steps`
steps at 32 px.
Each run is scored by the linear probe and kNN on the labelled test split at step 0 (the base as it is) and at
its last step, the backbone an unlabelled run exports, and on the monitor's validation split (a held-out fifth of
the labelled training split) at both: the rate is picked by validation, reported on test. SwAV's prototypes stay
frozen for its first epoch, as in its paper: one pass over the unlabelled images (79 steps of 64 over 5,000),
not the 313 steps of an ImageNet epoch at batch 4096 that its default counts; DINO's last layer likewise.
`--optimiser` (sgd, adamw, lars) trains them all with it; `--reuse` reads the runs already finished under `--out`
with the same config (a grid widened); `--set KEY=VALUE` adds a setting to every run (e.g.
`dino.head_batch_norm=true`). A method's default for the optimiser (`METHOD.lr` for sgd, `METHOD.adamw_lr`,
`METHOD.lars_lr`) is one the study cannot tell from the best: the learning rate with the best mean last-step
linear accuracy on validation over both targets and all seeds (`chosen`; a tie broken by kNN there), or a rate it
leads by no more than one standard error (`within_noise`: a default already there stays then, not moved on noise),
and of those not one whose kNN accuracy on validation fell under the base's by more than one standard error
(`knn_worse`; sgd keeps one all the same where every such rate is); for adamw and lars the best of the rest where it
leaves the base better on validation (`adopted`), else the method has none for the optimiser and a run needs
`optim.lr`. `--from-results` applies this rule again to a committed study's runs (their scores are in its
results.json), rewriting its summary and page (the page's note kept), and runs nothing.

    .venv/bin/python benchmarks/method_lr.py --out benchmarks/results/method_lr       # full: ~55 min, 2 cores*
    .venv/bin/python benchmarks/method_lr.py --quick --out /tmp/method_lr             # the suite's: ~40 s
    .venv/bin/python benchmarks/method_lr.py --methods dino --seeds 1 --out benchmarks/results/method_lr_dino
    .venv/bin/python benchmarks/method_lr.py --methods distill --seeds 1 --set distill.teacher=LITE2.pth \
        distill.teacher_backbone=timm:tf_efficientnet_lite2 distill.teacher_image_size=64 distill.queue_size=4096 \
        --out benchmarks/results/method_lr_distill
    .venv/bin/python benchmarks/method_lr.py --optimiser adamw --methods mocov2 simclr --seeds 1 \
        --lrs 0.0001 0.0005 0.0025 0.0125 --reuse --out benchmarks/results/method_lr_adamw
    .venv/bin/python benchmarks/method_lr.py --optimiser lars --methods simclr byol --seeds 1 \
        --lrs 0.03 0.1 0.3 --out benchmarks/results/method_lr_lars
    .venv/bin/python benchmarks/method_lr.py --optimiser adamw --methods byol swav --seeds 1 \
        --lrs 0.0001 0.0005 0.0025 0.0125 --out benchmarks/results/method_lr_adamw_byol_swav      # 45 min
    .venv/bin/python benchmarks/method_lr.py --methods byol --seeds 1 --lrs 0.003 0.01 0.03 0.1 0.3 1.0 --reuse \
        --out benchmarks/results/method_lr_byol          # 19 min: BYOL's first grid (0.003-0.03) stopped at its best
    .venv/bin/python benchmarks/method_lr.py --methods mocov2 --seeds 3 --per-class 200 --lrs 0.01 0.03 0.1 0.3 \
        --out benchmarks/results/method_lr_mocov2        # 26 min: MoCo v2's best on test was 0.03, the edge, too
    .venv/bin/python benchmarks/method_lr.py --optimiser lars --methods simclr byol --seeds 1 --lrs 0.3 1.0 3.0 \
        --out benchmarks/results/method_lr_lars_wide     # 20 min: SimCLR's LARS best was 0.3, the edge
    .venv/bin/python benchmarks/method_lr.py --optimiser adamw --methods distill dino --seeds 1 --lrs 0.0005 0.0025 \
        --set distill.teacher=LITE2.pth distill.teacher_backbone=timm:tf_efficientnet_lite2 \
        distill.teacher_image_size=64 distill.queue_size=4096 \
        --out benchmarks/results/method_lr_adamw_dino_distill   # 34 min
    .venv/bin/python benchmarks/method_lr.py --methods distill --seeds 1 --lrs 0.03 0.1 0.3 1.0 --set (as above) \
        --out benchmarks/results/method_lr_distill_wide  # 7 min: distillation's first grid's best was 0.1, the edge
    .venv/bin/python benchmarks/method_lr.py --methods dino --seeds 1 --lrs 0.03 0.1 0.3 --reuse \
        --out benchmarks/results/method_lr_dino_wide     # 23 min, 0.3 17 min more: DINO's first grid's best was 0.03
    .venv/bin/python benchmarks/method_lr.py --methods dino --seeds 1 --per-class 200 --lrs 0.03 0.3 1.0 --reuse \
        --out benchmarks/results/method_lr_dino_sharp    # 23 min for 0.03 / 0.3, 12 more for 1.0: 400 val images
    .venv/bin/python benchmarks/method_lr.py --optimiser adamw --methods distill dino --seeds 1 \
        --lrs 0.0001 0.0005 0.0025 0.0125 --reuse --set (as above) \
        --out benchmarks/results/method_lr_adamw_dino_distill   # 25 min more: the first two rates' grid widened
    .venv/bin/python benchmarks/method_lr.py --optimiser lars --methods swav --seeds 1 --lrs 0.03 0.1 0.3 1.0 \
        --reuse --out benchmarks/results/method_lr_lars_swav   # 0.1-1.0 first (25 min), then 0.03 (10 min)
    .venv/bin/python benchmarks/method_lr.py --from-results --out benchmarks/results/method_lr_adamw   # seconds, no run

* measured while another study shared the 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from pathlib import Path

from provenance import git_revision, header, markdown_header, today
from study import (
    curve_text,
    epoch_steps,
    last_step_scores,
    mean_sd,
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

from hpt.core.run_files import read_monitor
from hpt.eval.monitor import VALIDATION_FRACTION
from hpt.eval.protocols import held_out_count

VALIDATION_SCORES = {"linear": "linear_val_top1", "kNN": "knn_val_top1_k20"}
"""The monitor's scores on its validation split (a held-out fifth of the labelled training split): what picks."""
METHODS = ["mocov2", "simclr", "byol", "swav", "dino"]
QUICK_METHODS = ["mocov2", "dino"]
CHOICES = [*METHODS, "distill"]
"""`--methods` takes distillation too, its teacher given by `--set distill.teacher=...` (not in the default list)."""


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    epoch = epoch_steps(data, args.batch_size)
    runs: dict[str, dict[str, list[dict]]] = {}
    for method in args.methods:
        runs[method] = {}
        for lr in args.lrs:
            runs[method][str(lr)] = []
            for seed in range(args.seeds):
                settings = {
                    "method": method,
                    "optim.name": args.optimiser,
                    "optim.lr": lr,
                    **run_settings(args, seed),
                    "swav.freeze_prototypes_steps": epoch,
                    "dino.freeze_last_layer_steps": epoch,
                    **dict(setting.split("=", 1) for setting in args.set),
                }
                folder = args.out / "runs" / target / f"{method}-lr{lr}-{seed}"
                run = scored_run(data, str(data / "pretrain"), folder, "full", args.steps, args.steps, settings,
                                 reuse=args.reuse)  # fmt: skip
                monitor = read_monitor(folder)
                run["validation"] = {
                    label: {"base": monitor[0][key], "last": monitor[-1][key]}
                    for label, key in VALIDATION_SCORES.items()
                }
                runs[method][str(lr)].append(run)
                print(f"{target} {method} lr {lr} seed {seed}: {curve_text(run['curve'])}", flush=True)
    return {"runs": runs, "validation_images": validation_images(data / "train")}


def validation_images(train: Path) -> int:
    """How many images the monitor holds out of the labelled training split `train` (one folder a class)."""
    return sum(held_out_count(len(list(c.iterdir())), VALIDATION_FRACTION) for c in train.iterdir() if c.is_dir())


def difference(pairs: list[tuple[float, float, int]]) -> dict[str, float]:
    """The mean of a - b over `pairs` (a, b, n: two accuracies on the same n validation images), in points, and its
    standard error: each accuracy a binomial proportion over its n images (an upper bound: the same images score
    both, which a paired count would use)."""
    variance = sum((a * (1 - a) + b * (1 - b)) / n for a, b, n in pairs) / len(pairs) ** 2
    return {"points": 100 * sum(a - b for a, b, _ in pairs) / len(pairs), "se": 100 * math.sqrt(variance)}


def lead(results: dict, method: str, best: str, other: str) -> dict[str, float]:
    """How far rate `best` leads rate `other` on validation (mean over targets x seeds, linear probe)."""
    return difference(
        [
            (a["validation"]["linear"]["last"], b["validation"]["linear"]["last"], result["validation_images"])
            for result in results["targets"].values()
            for a, b in zip(result["runs"][method][best], result["runs"][method][other], strict=True)
        ]
    )


def knn_change(results: dict, method: str, lr: str) -> dict[str, float]:
    """How far rate `lr` moved kNN accuracy on validation from the base's (mean over targets x seeds)."""
    return difference(
        [
            (run["validation"]["kNN"]["last"], run["validation"]["kNN"]["base"], result["validation_images"])
            for result in results["targets"].values()
            for run in result["runs"][method][lr]
        ]
    )


def summarise(results: dict, lrs: list[float], methods: list[str], optimiser: str) -> dict:
    """Per method and learning rate: last-step accuracy (mean and sd over targets x seeds, and per target), its
    change from the base, and the same on validation; the chosen learning rate (best mean last-step validation
    accuracy: the test scores beside it are not what picked it), the rates within one standard error of it, and
    of those the ones a default may be (`defaults`): those whose kNN accuracy on validation did not fall under the
    base's by more than one standard error. A linear probe can rise while the neighbourhoods a kNN search or a
    retrieval reads worsen (DINO's and SwAV's AdamW at 0.0025 did: -10 and -8 points): such a rate is not handed
    to a user as a default when one the study cannot tell from it keeps them."""
    summary: dict = {}
    for method in methods:
        entry: dict = {}
        for lr in map(str, lrs):
            runs = [(t, r) for t, result in results["targets"].items() for r in result["runs"][method][lr]]
            entry[lr] = last_step_scores(runs, list(results["targets"]))
            for label in VALIDATION_SCORES:
                scores = [r["validation"][label] for _, r in runs]
                entry[lr][f"{label}_validation"] = mean_sd([s["last"] for s in scores])
                entry[lr][f"{label}_validation_change"] = mean_sd([s["last"] - s["base"] for s in scores])
            entry[lr]["kNN_validation_from_base"] = knn_change(results, method, lr)
        # a tie on the linear probe (its validation split is 100 images a target) is broken by kNN there
        ranked = sorted(
            map(str, lrs),
            key=lambda lr: (entry[lr]["linear_validation"]["mean"], entry[lr]["kNN_validation"]["mean"]),
            reverse=True,
        )
        entry["chosen"] = ranked[0]
        # the chosen rate's lead over each other rate, and the rates it does not lead by one standard error: the
        # measurement cannot tell them from the best (a default among them is as good as this study can say)
        entry["lead"] = {lr: lead(results, method, entry["chosen"], lr) for lr in ranked[1:]}
        entry["within_noise"] = [entry["chosen"]] + [lr for lr, d in entry["lead"].items() if d["points"] <= d["se"]]
        changes = {lr: entry[lr]["kNN_validation_from_base"] for lr in ranked}
        entry["knn_worse"] = [lr for lr in ranked if changes[lr]["points"] < -changes[lr]["se"]]
        # best first; sgd keeps a default among them (or, where every one worsens kNN, among `within_noise`) even
        # under the base
        entry["defaults"] = [lr for lr in ranked if lr in entry["within_noise"] and lr not in entry["knn_worse"]]
        # what `METHOD.adamw_lr` / `METHOD.lars_lr` take when first measured: the best of `defaults` that leaves the
        # base better on validation, else none
        better = may_default(entry, "adamw")
        entry["adopted"] = better[0] if better else None
        # what `METHOD.lr` / `adamw_lr` / `lars_lr` (the study's optimiser's) may be: what the config is held to
        entry["may_default"] = may_default(entry, optimiser)
        summary[method] = entry
    return summary


def may_default(entry: dict, optimiser: str) -> list[str]:
    """The rates `METHOD.lr` (sgd), `METHOD.adamw_lr` or `METHOD.lars_lr` may be, given a method's summary `entry`:
    its `defaults`, and for adamw and lars only those that leave the base better on validation (none: a run needs
    `optim.lr`); sgd keeps one all the same, where every rate within one SE of the best worsens kNN among those."""
    if optimiser == "sgd":
        return entry["defaults"] or entry["within_noise"]
    return [lr for lr in entry["defaults"] if entry[lr]["linear_validation_change"]["mean"] > 0]


def markdown(results: dict, lrs: list[float], methods: list[str], optimiser: str) -> str:
    title = "Learning rate per method, continuing from the ImageNet Lite0"
    lines = markdown_header(title + ("" if optimiser == "sgd" else f", with {optimiser}"), results)
    summary, targets = results["summary"], list(results["targets"])
    bases = {t: results["targets"][t]["runs"][methods[0]][str(lrs[0])][0]["curve"][0] for t in targets}
    lines += [
        "Base as it is: " + "; ".join(f"{t} linear {b['linear']:.1%}, kNN {b['kNN']:.1%}" for t, b in bases.items()),
        "",
        "Last-step linear accuracy on the test split, mean ± sd over "
        f"{len(targets)} target(s) x {results['seeds']} seed(s), and its change from the base (points); after "
        "`val`, the same on the validation split, which picks the rate (a tie there broken by kNN on it). "
        "Chosen: the best on validation, and the rates it leads by no more than one standard error (its lead in "
        "points ± the SE, each run's accuracy a binomial proportion over "
        + ", ".join(f"{t}'s {r['validation_images']}" for t, r in results["targets"].items())
        + " validation images): the study cannot tell those from the best. Of those, a rate whose kNN accuracy on "
        "validation fell under the base's by more than one SE (points from the base ± the SE, binomial likewise) "
        "is no default. A default: the rates the method's default may be (with adamw or lars only those that leave "
        "the base better on validation; none: a run needs `optim.lr`). Learning rates are per 256 images.",
        "",
        "| method | " + " | ".join(f"lr {lr}" for lr in lrs) + " | chosen |",
        "|---|" + "---|" * (len(lrs) + 1),
    ]
    for method in methods:
        s = summary[method]
        cells = [
            f"{s[str(lr)]['linear']['mean']:.1%} ± {s[str(lr)]['linear']['sd']:.1%} "
            f"({100 * s[str(lr)]['linear_change']['mean']:+.1f}); val {s[str(lr)]['linear_validation']['mean']:.1%} "
            f"({100 * s[str(lr)]['linear_validation_change']['mean']:+.1f})"
            for lr in lrs
        ]
        chosen = s["chosen"] + (" (under the base)" if s[s["chosen"]]["linear_validation_change"]["mean"] <= 0 else "")
        tied = [f"{lr} ({s['lead'][lr]['points']:+.1f} ± {s['lead'][lr]['se']:.1f})" for lr in s["within_noise"][1:]]
        chosen += f"; within one SE of it: {', '.join(tied)}" if tied else "; ahead of the others by over one SE"
        worse = [
            f"{lr} ({s[lr]['kNN_validation_from_base']['points']:+.1f} ± {s[lr]['kNN_validation_from_base']['se']:.1f})"
            for lr in s["within_noise"]
            if lr in s["knn_worse"]
        ]
        if worse:
            chosen += f"; kNN under the base by over one SE at {', '.join(worse)}"
        chosen += f"; a default: {', '.join(s['may_default']) or 'none'}"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {chosen} |")
    lines += ["", "By target (last-step linear / kNN, mean over seeds):", ""]
    lines += ["| method | lr | " + " | ".join(targets) + " |", "|---|---|" + "---|" * len(targets)]
    for method in methods:
        for lr in map(str, lrs):
            s = summary[method][lr]
            cells = [f"{s['linear_by_target'][t]['mean']:.1%} / {s['kNN_by_target'][t]['mean']:.1%}" for t in targets]
            lines.append(f"| {method} | {lr} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


RECOMPUTED = "Summary and choice recomputed"
"""How the line a page written again by `--from-results` gains begins (one such line a page: the latest)."""


def page_note(page: Path) -> list[str]:
    """The note added by hand to a committed results.md after its Date line (its runs' story), to keep on a page
    written again."""
    lines = page.read_text().splitlines() if page.exists() else []
    starts = [i for i, line in enumerate(lines) if line.startswith("Date: ")]
    ends = [i for i, line in enumerate(lines) if line.startswith("Base as it is: ")]
    note = lines[starts[0] + 1 : ends[0]] if starts and ends else []
    return [line for line in note if line.strip() and not line.startswith(RECOMPUTED)]


def from_results(parser: argparse.ArgumentParser, out: Path) -> None:
    """Summarise a committed study again from its results.json (its runs' scores, and the command that made them),
    under today's rule: the summary and page are rewritten, dated, the page's note kept; no run is made."""
    path = out / "results.json"
    if not path.is_file():
        parser.error(f"--from-results: {path} does not exist; expected a method_lr.py study's results.json")
    try:
        results = json.loads(path.read_text())
        command = shlex.split(results["command"])
    except (ValueError, KeyError, TypeError, AttributeError):
        results, command = None, []
    if not command or command[0] != "benchmarks/method_lr.py" or "targets" not in results:
        parser.error(f"--from-results: {path} is not a method_lr.py study's results (its command and runs)")
    args = parser.parse_args(command[1:] + ["--out", str(out)])
    args.methods = args.methods or METHODS
    results["summary"] = summarise(results, args.lrs, args.methods, args.optimiser)
    results["summarised"] = {"date": today(), "git": git_revision()}
    page = markdown(results, args.lrs, args.methods, args.optimiser).splitlines()
    note = page_note(out / "results.md") + [
        f"{RECOMPUTED} from these runs' scores on {results['summarised']['date']}, git "
        f"{results['summarised']['git']} (`method_lr.py --from-results`): no run made again."
    ]
    date = next(i for i, line in enumerate(page) if line.startswith("Date: "))
    page[date + 1 : date + 1] = note
    write_results(out, results, "\n".join(page) + "\n")


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=100)
    seed_arguments(parser, 2)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    parser.add_argument("--methods", nargs="+", choices=CHOICES, help=f"default: {' '.join(METHODS)}")
    parser.add_argument("--optimiser", choices=["sgd", "adamw", "lars"], default="sgd")
    parser.add_argument("--reuse", action="store_true", help="read a finished run of the same config, not run it again")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="a setting added to every run")
    parser.add_argument("--from-results", action="store_true", help="summarise OUT/results.json again; run nothing")
    target_arguments(parser)
    args = parser.parse_args()
    if args.from_results:
        return from_results(parser, args.out)
    if args.quick:  # the study is method-agnostic (optim.lr): MoCo, and DINO for its multi-crop and freeze
        args.steps, args.seeds, args.lrs, args.methods = 2, 1, [0.01, 0.03], args.methods or QUICK_METHODS
        quick_targets(args)
    args.methods = args.methods or METHODS
    results = run_targets({**header("method_lr.py", args), "seeds": args.seeds}, args, run_target)
    results["summary"] = summarise(results, args.lrs, args.methods, args.optimiser)
    write_results(args.out, results, markdown(results, args.lrs, args.methods, args.optimiser))


if __name__ == "__main__":
    main()
