"""`hpt report RUN... --out DIR`: `report.md` with the table of runs, and PNG plots: the training curves of
every run, labelled or not (loss, learning rate, embedding spread, RankMe), the monitor's accuracy against
pretraining steps for whichever protocol it ran (the base as it is drawn as a line), and the speed-up."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hpt.checkpoints.files import make_folder  # noqa: E402
from hpt.core.run_files import BACKBONE, read_metrics, read_monitor  # noqa: E402
from hpt.errors import HptError  # noqa: E402
from hpt.report.speedup import Curve, describe, speedup  # noqa: E402

TRAINING_CURVES = (
    ("loss", "training loss", "train"),
    ("lr", "learning rate", "train"),
    ("embedding_spread", "embedding spread (1 even, 0 collapsed)", "train"),
    ("rankme", "RankMe (label-free)", "monitor"),
)
"""(key, axis label, which records): the panels of `training.png`, drawn for every run."""


@dataclass(frozen=True)
class RunRecord:
    name: str
    path: Path
    provenance: dict[str, Any]
    evals: dict[str, Any]
    curve: Curve
    """The monitor's selecting score against steps (empty for a run without labelled monitor splits)."""
    curve_metric: str | None
    training: list[dict[str, Any]]
    monitor: list[dict[str, Any]]

    @property
    def init(self) -> str:
        return self.provenance.get("init", "?")


def load_run(path: Path) -> RunRecord:
    if not (path / BACKBONE).is_file():
        raise HptError(f"report: '{path}' is not a finished hpt run (no {BACKBONE})")
    provenance = json.loads((path / "backbone.json").read_text())
    evals = json.loads((path / "eval.json").read_text()) if (path / "eval.json").is_file() else {}
    monitor = read_monitor(path)
    metric = next((r["monitor"] for r in monitor if r.get("monitor") not in (None, "unlabelled")), None)
    curve = [(int(r["step"]), float(r[metric])) for r in monitor if metric in r] if metric else []
    return RunRecord(path.name, path, provenance, evals, curve, metric, read_metrics(path), monitor)


def _metric_columns(runs: list[RunRecord]) -> list[tuple[str, str]]:
    columns = []
    for run in runs:
        for protocol, result in run.evals.items():
            for metric in result["metrics"]:
                if (protocol, metric) not in columns and "_val_" not in metric:
                    columns.append((protocol, metric))
    return columns


def build_report(paths: list[Path], out: Path) -> Path:
    runs = [load_run(path) for path in paths]
    make_folder(out)
    columns = _metric_columns(runs)
    lines = [
        "# hpt report",
        "",
        "| " + " | ".join(["run", "base", "method", "init", "steps", "wall time", *(m for _, m in columns)]) + " |",
        "|" + "---|" * (6 + len(columns)),
    ]
    for run in runs:
        p = run.provenance
        base = (p.get("base") or {}).get("spec") or "-"
        cells = [
            run.name,
            Path(str(base)).name,
            p.get("method", "?"),
            run.init,
            str(p.get("steps")),
            f"{p.get('wall_time_s', 0):.0f} s",
        ]
        cells += [_percent(run.evals.get(protocol, {}).get("metrics", {}).get(metric)) for protocol, metric in columns]
        lines.append("| " + " | ".join(cells) + " |")

    _plot_training(runs, out / "training.png")
    lines += [
        "",
        "![training curves](training.png)",
        "",
        "Training curves of every run: the loss and learning rate of each logged step, the embedding spread "
        "(`metrics.jsonl`), and the label-free RankMe of each evaluation (step 0 is the starting point).",
    ]
    metrics = sorted({run.curve_metric for run in runs if run.curve_metric})
    curves = [run for run in runs if run.curve and run.curve_metric == (metrics[0] if metrics else None)]
    curve_metric = metrics[0] if metrics else ""
    if curves:
        _plot_curves(curves, curve_metric, out / "accuracy_vs_steps.png")
        lines += [
            "",
            "![accuracy against pretraining steps](accuracy_vs_steps.png)",
            "",
            f"Curves: the online monitor's {curve_metric} against pretraining steps; step 0 is each run's "
            "starting point, so a run from a base starts at the base as it is (dashed line).",
        ]
        if len(metrics) > 1:
            lines += ["", f"Runs monitored by another score ({', '.join(metrics[1:])}) are not on this plot."]
    scratch = next((run for run in curves if run.init == "scratch"), None)
    if scratch is not None:
        best = max(accuracy for _, accuracy in scratch.curve)
        best_step = next(step for step, accuracy in scratch.curve if accuracy == best)
        lines += [
            "",
            "## Speed-up",
            "",
            f"The from-scratch run `{scratch.name}` reached its best {curve_metric} of {best:.1%} at step "
            f"{best_step}; the speed-up is the steps it needed divided by the steps each run needed to reach "
            "that accuracy.",
            "",
            "| run | speed-up |",
            "|---|---|",
        ]
        speedups = {run.name: speedup(scratch.curve, run.curve) for run in curves if run is not scratch}
        lines += [f"| {name} | {describe(value)} |" for name, value in speedups.items()]
        _plot_speedups(speedups, out / "speedup.png")
        lines += ["", "![speed-up](speedup.png)"]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _plot_training(runs: list[RunRecord], path: Path) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for axis, (key, label, source) in zip(axes.flat, TRAINING_CURVES):
        for run in runs:
            points = [(r["step"], r[key]) for r in (run.training if source == "train" else run.monitor) if key in r]
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, marker="o" if len(points) < 30 else None, label=f"{run.name} ({run.init})")
        axis.set_xlabel("pretraining steps")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_curves(runs: list[RunRecord], metric: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    base_drawn = False
    for run in runs:
        steps, accuracies = zip(*run.curve)
        axis.plot(steps, accuracies, marker="o", label=f"{run.name} ({run.init})")
        if run.init != "scratch" and not base_drawn:
            axis.axhline(accuracies[0], color="grey", linestyle="--", label="base as it is")
            base_drawn = True
    axis.set_xlabel("pretraining steps")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_speedups(speedups: dict[str, float | None], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 3.5))
    names = list(speedups)
    finite = [v for v in speedups.values() if v is not None and v == v and v != float("inf")]
    ceiling = max(finite, default=1.0) * 1.2
    heights = [0.0 if v is None or v != v else (ceiling if v == float("inf") else v) for v in speedups.values()]
    bars = axis.bar(names, heights, color="tab:blue")
    for bar, value in zip(bars, speedups.values()):
        axis.annotate(
            describe(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8
        )
    axis.set_ylabel("speed-up over scratch (x)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
