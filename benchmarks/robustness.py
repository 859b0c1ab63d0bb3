"""HPT's third finding on real data: is pretraining that starts from a pretrained base more robust to the
augmentation policy and to the amount of pretraining data than pretraining from scratch?

Target: Fashion-MNIST (Debian's dataset-fashion-mnist; MNIST-5k where it is missing). Base: the real ImageNet
EfficientNet-Lite0. MoCo v2, 32 px, batch 64, the same number of steps for every run. HPT (`--init full`, hpt's
default of frozen BN statistics) against scratch:
- augmentation policies (`views.policy`): full, no-color, crop-only, on all the unlabelled images;
- pretraining data: 1%, 10%, 25% and 100% of the unlabelled images (the `full` policy), as file lists.
Each run is scored at its end by a linear probe and kNN on the labelled split (the monitor's `both` protocol; the
same code as `hpt eval`); HPT's step 0 is the base as it is. Robustness is read as the spread (best minus worst)
of a strategy's accuracy over the policies, and over the data fractions, beside its mean (a run that learns
nothing under every setting has a small spread too).

    .venv/bin/python benchmarks/robustness.py --out benchmarks/results/robustness       # full: ~25 min, 2 cores
    .venv/bin/python benchmarks/robustness.py --quick --out /tmp/robustness             # the suite's: ~1 min
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from provenance import header, markdown_header  # noqa: E402
from study import SCORES, available, save_figure, scored_run, scores, study_arguments, target_data, write_results  # noqa: E402

from hpt.data.files import find_images  # noqa: E402

STRATEGIES = {"scratch": "scratch", "HPT": "full"}
POLICIES = ["full", "no-color", "crop-only"]
FRACTIONS = [0.01, 0.10, 0.25, 1.0]


def fraction_list(folder: Path, fraction: float, out: Path) -> str:
    """A file list of a fixed random `fraction` of the images in `folder` (the smaller lists nest in the larger)."""
    paths = find_images(str(folder)).paths
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(0)).tolist()
    chosen = sorted(paths[i] for i in order[: max(1, round(fraction * len(paths)))])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{path}\n" for path in chosen))
    return str(out)


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--queue", type=int, default=4096)
    parser.add_argument("--unlabelled", type=int, default=10000, help="100%%; 1%% of it must fill a batch")
    parser.add_argument("--target", default="fashion-mnist")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.image_size, args.batch_size, args.queue = 2, 16, 8, 32
        args.unlabelled, args.per_class, args.workers, args.target = 800, 5, 0, "mnist-5k"
    target = (available([args.target]) or ["mnist-5k"])[0]
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    settings = {
        "data.image_size": args.image_size,
        "data.num_workers": args.workers,
        "train.batch_size": args.batch_size,
        "mocov2.queue_size": args.queue,
    }
    results = {**header("robustness.py", args), "target": target, "policies": {}, "fractions": {}}
    for name, init in STRATEGIES.items():
        for policy in POLICIES:
            run = scored_run(
                data,
                str(data / "pretrain"),
                args.out / "runs" / name / f"policy-{policy}",
                init,
                args.steps,
                0,
                {**settings, "views.policy": policy},
            )
            results["policies"].setdefault(name, {})[policy] = run
            print(f"{name} policy {policy}: {end(run)}", flush=True)
        for fraction in FRACTIONS:
            if fraction == 1.0:
                run = results["policies"][name]["full"]  # the same run: all images, the full policy
            else:
                images = fraction_list(data / "pretrain", fraction, args.out / "lists" / f"{fraction:.2f}.txt")
                run = scored_run(
                    data, images, args.out / "runs" / name / f"fraction-{fraction:.2f}", init, args.steps, 0, settings
                )
            results["fractions"].setdefault(name, {})[f"{fraction:.2f}"] = run
            print(f"{name} fraction {fraction:.0%}: {end(run)}", flush=True)
    results["summary"] = summarise(results)
    plot(results, args.out / "robustness.png")
    write_results(args.out, results, markdown(results))


def end(run: dict) -> str:
    last = run["curve"][-1]
    return f"linear {last['linear']:.3f}, kNN {last['kNN']:.3f} at step {last['step']}"


def summarise(results: dict) -> dict:
    summary: dict = {"base": scores(results["policies"]["HPT"]["full"]["curve"][0])}
    for study in ("policies", "fractions"):
        for name, runs in results[study].items():
            finals = {label: [run["curve"][-1][label] for run in runs.values()] for label in SCORES}
            summary.setdefault(study, {})[name] = {
                **{f"spread_{label}": max(v) - min(v) for label, v in finals.items()},
                **{f"mean_{label}": sum(v) / len(v) for label, v in finals.items()},
            }
    return summary


def plot(results: dict, path: Path) -> None:
    figure, (policies, fractions) = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(STRATEGIES)
    for i, name in enumerate(STRATEGIES):
        values = [results["policies"][name][p]["curve"][-1]["linear"] for p in POLICIES]
        policies.bar([x + i * width for x in range(len(POLICIES))], values, width, label=name)
        points = results["fractions"][name]
        fractions.plot(
            [100 * float(f) for f in points],
            [r["curve"][-1]["linear"] for r in points.values()],
            marker="o",
            label=name,
        )
    for axis in (policies, fractions):
        axis.axhline(results["summary"]["base"]["linear"], color="grey", linestyle="--", label="base as is")
        axis.grid(alpha=0.3)
    policies.set_xticks([x + width / 2 for x in range(len(POLICIES))], POLICIES)
    policies.set_title(f"{results['target']}: linear accuracy by augmentation policy")
    fractions.set_xscale("log")
    fractions.set_xlabel("% of the unlabelled images")
    fractions.set_title("linear accuracy by amount of pretraining data")
    policies.legend()
    save_figure(figure, path)


def markdown(results: dict) -> str:
    s = results["summary"]
    title = "Robustness: to the augmentation policy and to the amount of pretraining data"
    lines = markdown_header(title, results) + [
        f"Target {results['target']}; base as it is: linear {s['base']['linear']:.1%}, kNN {s['base']['kNN']:.1%}."
        " Accuracy of each run at its end (linear / kNN).",
        "",
    ]
    for study, keys, label in (
        ("policies", POLICIES, "policy"),
        ("fractions", [f"{f:.2f}" for f in FRACTIONS], "data"),
    ):
        header = [k if study == "policies" else f"{float(k):.0%}" for k in keys]
        lines += [
            f"| {label} | " + " | ".join(header) + " | mean (linear / kNN) | spread, points (linear / kNN) |",
            "|---" * (len(keys) + 3) + "|",
        ]
        for name in STRATEGIES:
            runs, spread = results[study][name], s[study][name]
            cells = [f"{runs[k]['curve'][-1]['linear']:.1%} / {runs[k]['curve'][-1]['kNN']:.1%}" for k in keys]
            lines.append(
                f"| {name} | " + " | ".join(cells) + f" | {spread['mean_linear']:.1%} / "
                f"{spread['mean_kNN']:.1%} | {100 * spread['spread_linear']:.1f} / "
                f"{100 * spread['spread_kNN']:.1f} |"
            )
        lines.append("")
    lines += ["![robustness](robustness.png)", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
