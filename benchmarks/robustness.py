"""HPT's third finding on real data: is pretraining that starts from a pretrained base more robust to the
augmentation policy and to the amount of pretraining data than pretraining from scratch?

Targets: Fashion-MNIST (Debian's dataset-fashion-mnist, when installed) and, in colour, Google's emoji (npm's
emoji-datasource-google: 1,906 clip-art images in 9 categories). Base: the real ImageNet EfficientNet-Lite0. MoCo v2
(hpt's defaults), 64 px, batch 64, the same number of steps for every run, `--seeds` seeds of each. HPT
(`--init full`, hpt's default of frozen BN statistics) against scratch (its BatchNorm statistics estimated on the
target before step 0, hpt's default since 0.5):
- augmentation policies (`views.policy`, `--policies`): full, no-color, crop-only, on all the unlabelled images;
- pretraining data (`--fractions`): 10%, 30% and 100% of the unlabelled images (the `full` policy), as file lists.
Each run is scored at its end by a linear probe and kNN on the labelled split (the monitor's `both` protocol; the
same code as `hpt eval`); HPT's step 0 is the base as it is, scratch's the random network it starts from.
Robustness is read as the spread (best minus worst, per seed) of a strategy's accuracy over the policies, and over
the data fractions, beside its mean (a run that learns nothing under every setting has a small spread too), and
against each strategy's own step 0: does it still beat where it started?

    .venv/bin/python benchmarks/robustness.py --out benchmarks/results/robustness       # full: ~60 min, 2 cores
    .venv/bin/python benchmarks/robustness.py --quick --out /tmp/robustness             # the suite's: ~1 min
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from provenance import header, markdown_header  # noqa: E402
from study import (  # noqa: E402
    SCORES,
    cell,
    mean_sd,
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

from hpt.data.files import find_images  # noqa: E402

STRATEGIES = {"scratch": "scratch", "HPT": "full"}
POLICIES = ["full", "no-color", "crop-only"]
FRACTIONS = [0.10, 0.30, 1.0]
STUDIES = ("policies", "fractions")
QUICK = {"policies": ["full", "crop-only"], "fractions": [0.10, 0.30, 1.0]}
"""The quick mode's settings: every piece of the study, with one run a seed fewer than the full mode's."""


def studies(policies: list[str], fractions: list[float]) -> dict[str, list[str]]:
    """The settings of the two studies, as the results name them."""
    return {"policies": policies, "fractions": [f"{f:.2f}" for f in fractions]}


def fraction_list(folder: Path, fraction: float, out: Path) -> str:
    """A file list of a fixed random `fraction` of the images in `folder` (the smaller lists nest in the larger)."""
    paths = find_images(str(folder)).paths
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(0)).tolist()
    chosen = sorted(paths[i] for i in order[: max(1, round(fraction * len(paths)))])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{path}\n" for path in chosen))
    return str(out)


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    settings_of = studies(args.policies, args.fractions)
    result: dict = {
        study: {name: {key: [] for key in keys} for name in STRATEGIES} for study, keys in settings_of.items()
    }
    for seed in range(args.seeds):
        settings = run_settings(args, seed)
        for name, init in STRATEGIES.items():
            folder = args.out / "runs" / target / f"{name}-{seed}"
            for policy in args.policies:
                run = scored_run(data, str(data / "pretrain"), folder / f"policy-{policy}", init, args.steps, 0,
                                 {**settings, "views.policy": policy}, reuse=args.reuse)  # fmt: skip
                result["policies"][name][policy].append(run)
                print(f"{target} seed {seed} {name} policy {policy}: {end(run)}", flush=True)
            for fraction in args.fractions:
                if fraction == 1.0:
                    run = result["policies"][name]["full"][-1]  # the same run: all images, the full policy
                else:
                    lists = args.out / "lists" / target
                    images = fraction_list(data / "pretrain", fraction, lists / f"{fraction:.2f}.txt")
                    run = scored_run(data, images, folder / f"fraction-{fraction:.2f}", init, args.steps, 0, settings,
                                     reuse=args.reuse)  # fmt: skip
                result["fractions"][name][f"{fraction:.2f}"].append(run)
                print(f"{target} seed {seed} {name} fraction {fraction:.0%}: {end(run)}", flush=True)
    result["summary"] = summarise(result)
    return result


def end(run: dict) -> str:
    last = run["curve"][-1]
    return f"linear {last['linear']:.3f}, kNN {last['kNN']:.3f} at step {last['step']}"


def summarise(result: dict) -> dict:
    """Per strategy and score: its step 0; per setting, the last accuracy (mean and sd over seeds); per study,
    the spread over its settings and their mean (each per seed, then mean and sd), and in how many (setting,
    seed) runs the last step beats the run's own step 0."""
    summary: dict = {}
    for name in STRATEGIES:
        entry: dict = {}
        for label in SCORES:
            starts = [run["curve"][0][label] for run in result["policies"][name]["full"]]
            entry[label] = {"start": mean_sd(starts)}
            for study in STUDIES:
                runs = result[study][name]
                keys = list(runs)  # the settings run
                last = {key: [run["curve"][-1][label] for run in runs[key]] for key in keys}
                per_seed = list(zip(*last.values()))  # each seed's accuracy in every setting
                beats = sum(run["curve"][-1][label] > run["curve"][0][label] for key in keys for run in runs[key])
                entry[label][study] = {
                    "last": {key: mean_sd(values) for key, values in last.items()},
                    "mean": mean_sd([sum(seed) / len(seed) for seed in per_seed]),
                    "spread": mean_sd([max(seed) - min(seed) for seed in per_seed]),
                    "beats_start": f"{beats}/{sum(len(runs[key]) for key in keys)}",
                }
        summary[name] = entry
    return summary


def plot(target: str, result: dict, path: Path) -> None:
    figure, (policies, fractions) = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(STRATEGIES)
    names, shares = list(result["policies"]["HPT"]), list(result["fractions"]["HPT"])  # the settings run
    for i, name in enumerate(STRATEGIES):
        s = result["summary"][name]["linear"]
        bars = [s["policies"]["last"][p] for p in names]
        policies.bar([x + i * width for x in range(len(names))], [b["mean"] for b in bars], width,
                     yerr=[b["sd"] for b in bars], capsize=3, label=name)  # fmt: skip
        points = [s["fractions"]["last"][key] for key in shares]
        fractions.errorbar([100 * float(f) for f in shares], [p["mean"] for p in points],
                           yerr=[p["sd"] for p in points], marker="o", capsize=3, label=name)  # fmt: skip
    for axis in (policies, fractions):
        axis.axhline(result["summary"]["HPT"]["linear"]["start"]["mean"], color="grey", linestyle="--",
                     label="base as is")  # fmt: skip
        axis.axhline(result["summary"]["scratch"]["linear"]["start"]["mean"], color="grey", linestyle=":",
                     label="scratch's step 0")  # fmt: skip
        axis.grid(alpha=0.3)
    policies.set_xticks([x + width / 2 for x in range(len(names))], names)
    policies.set_title(f"{target}: linear accuracy by augmentation policy")
    fractions.set_xscale("log")
    fractions.set_xlabel("% of the unlabelled images")
    fractions.set_title("linear accuracy by amount of pretraining data")
    policies.legend(fontsize=7)
    save_figure(figure, path)


def markdown(results: dict) -> str:
    title = "Robustness: to the augmentation policy and to the amount of pretraining data"
    lines = markdown_header(title, results)
    for target, result in results["targets"].items():
        s, seeds = result["summary"], len(result["policies"]["HPT"]["full"])
        lines += [
            f"## {target}",
            "",
            f"Step 0: HPT's (the base as it is) linear {cell(s['HPT']['linear']['start'])}, kNN "
            f"{cell(s['HPT']['kNN']['start'])}; scratch's (random, BN statistics of the target) linear "
            f"{cell(s['scratch']['linear']['start'])}, kNN {cell(s['scratch']['kNN']['start'])}. Accuracy of each run "
            f"at its end, mean ± standard deviation over {seeds} seeds; spread: best minus worst setting, per seed.",
            "",
        ]
        for study in STUDIES:
            keys = list(result[study]["HPT"])
            names = keys if study == "policies" else [f"{float(k):.0%} of the images" for k in keys]
            for label in SCORES:
                lines += [
                    f"| {label} | " + " | ".join(names) + " | mean | spread, points | last beats step 0 |",
                    "|---" * (len(keys) + 4) + "|",
                ]
                for name in STRATEGIES:
                    r = s[name][label][study]
                    cells = [cell(r["last"][key]) for key in keys]
                    lines.append(
                        f"| {name} | " + " | ".join(cells) + f" | {cell(r['mean'])} | "
                        f"{cell(r['spread'], points=True).lstrip('+')} | {r['beats_start']} |"
                    )
                lines.append("")
        lines += [f"![{target}](robustness_{target}.png)", ""]
    return "\n".join(lines) + "\n"


def share(text: str) -> float:
    """A --fractions value: a share of the unlabelled images, in (0, 1] (1.5 would silently mean all of them)."""
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share of the images: expected a number in (0, 1]")
    return value


def main() -> None:
    parser = study_arguments(__doc__)
    parser.set_defaults(image_size=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="read finished runs of the same config (a study cut off)")
    seed_arguments(parser)
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=POLICIES)
    parser.add_argument("--fractions", type=share, nargs="+", default=FRACTIONS)
    target_arguments(parser, ("fashion-mnist", "emoji"))
    args = parser.parse_args()
    if 1.0 not in args.fractions or "full" not in args.policies:
        parser.error("--fractions needs 1.0 and --policies full: all the images under the full policy is one run")
    if args.quick:
        args.policies, args.fractions = QUICK["policies"], QUICK["fractions"]
        args.steps, args.image_size, args.batch_size, args.queue, args.seeds = 2, 16, 8, 32, 2
        args.unlabelled, args.per_class, args.workers, args.targets = 200, 5, 0, ["mnist-5k"]
    results = run_targets(header("robustness.py", args), args, run_target, plot, "robustness")
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
