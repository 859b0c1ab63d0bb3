"""DINO from the ImageNet Lite0 base, against HPT (MoCo v2) from the same base: same steps, batch, targets and seeds.

Both continue the real ImageNet EfficientNet-Lite0 with hpt's defaults (`--init full`, the base's BN statistics
frozen), `--steps` steps at batch 64 on 32-px views of each target, `--seeds` seeds each:
- `mocov2`: HPT, the method a run gets without `--method` (its queue 4096 here, as in every study at batch 64);
- `dino`: `--method dino` with its defaults (2 global crops and 8 local ones of 32 * 96/224 px, a 65536-output
  head, centring, the teacher's temperature 0.04 warming to 0.07 over the first 30% of the steps, gradients
  clipped at 3, `dino.lr` 0.3 per 256; the committed results before 2026-12-04 were made at 0.03, its default
  then), except its last layer: frozen for one pass over the unlabelled images (79 steps of 64 over 5,000, DINO's
  first epoch, as in `method_lr.py`), where the default's 313 steps (an ImageNet epoch at batch 4096)
  would freeze it for the whole run.

Each run exports its last step (no pick); scores are its last step's on the labelled test split, beside the
validation split's (the monitor's held-out fifth of the labelled training split). DINO against MoCo v2 is compared
in pairs (same target, same seed: the same base scored the same way at step 0), the difference's mean ± sd over the
pairs and its standard error; the seconds a training step take are the median logged window (evaluations left
out), DINO's 10 crops against MoCo's 2 views.

    .venv/bin/python benchmarks/dino.py --out benchmarks/results/dino     # 58 min on 2 cores (91 in its first run)
    .venv/bin/python benchmarks/dino.py --quick --out /tmp/dino           # the suite's: ~30 s
"""

from __future__ import annotations

import argparse

from provenance import header, markdown_header
from study import (
    SCORES,
    by_target_table,
    compared_run,
    curve_text,
    epoch_steps,
    paired_difference,
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

SETTINGS = ("mocov2", "dino")


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    chosen = {
        "mocov2": {"method": "mocov2"},
        "dino": {"method": "dino", "dino.freeze_last_layer_steps": epoch_steps(data, args.batch_size)},
    }
    runs: dict[str, list[dict]] = {}
    for name, settings in chosen.items():
        runs[name] = []
        for seed in range(args.seeds):
            run = compared_run(data, args.out / "runs" / target / f"{name}-{seed}", args, seed, settings)
            runs[name].append(run)
            print(f"{target} {name} seed {seed}: {curve_text(run['curve'])} ({run['seconds']} s)", flush=True)
    return {"runs": runs}


def paired(targets: dict, label: str) -> dict:
    """DINO's last step minus MoCo v2's over (target, seed) pairs: mean, sd, standard error, the pairs DINO wins."""
    differences = [
        d["curve"][-1][label] - m["curve"][-1][label]
        for result in targets.values()
        for d, m in zip(result["runs"]["dino"], result["runs"]["mocov2"], strict=True)
    ]
    return paired_difference(differences)


def summarise(results: dict, args: argparse.Namespace) -> dict:
    targets = results["targets"]
    return {
        "settings": {name: setting_summary(targets, name, args.batch_size) for name in SETTINGS},
        "dino_minus_mocov2": {label: paired(targets, label) for label in SCORES},
    }


def markdown(results: dict, args: argparse.Namespace) -> str:
    lines = markdown_header("DINO from the Lite0 base, beside HPT (MoCo v2)", results)
    summary, targets = results["summary"], list(results["targets"])
    settings = summary["settings"]
    lines += [
        f"{args.steps} steps at batch {args.batch_size}, {args.image_size} px; last step, labelled test split; mean ± "
        f"sd over {len(targets)} target(s) x {args.seeds} seed(s), the change from the base in points.",
        "",
        *settings_table(settings),
        "",
        "DINO minus MoCo v2, paired by target and seed (points: mean ± sd, standard error; pairs DINO wins):",
        "",
    ]
    for label, d in summary["dino_minus_mocov2"].items():
        lines.append(
            f"- {label}: {100 * d['mean']:+.1f} ± {100 * d['sd']:.1f} (standard error {100 * d['standard_error']:.1f}; "
            f"{d['wins']}/{d['pairs']})"
        )
    ratio = settings["dino"]["seconds_per_step"] / settings["mocov2"]["seconds_per_step"]
    lines += [
        "",
        f"A DINO step took {ratio:.1f}x a MoCo v2 step here (median logged windows).",
        "",
        "By target (last-step linear / kNN, mean ± sd over seeds):",
        "",
        *by_target_table(settings, targets),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=100)
    seed_arguments(parser, 3)
    target_arguments(parser, ("fashion-mnist", "mnist-5k", "emoji"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds = 2, 1
        quick_targets(args)
    results = run_targets({**header("dino.py", args), "seeds": args.seeds}, args, run_target)
    results["summary"] = summarise(results, args)
    write_results(args.out, results, markdown(results, args))


if __name__ == "__main__":
    main()
