"""`hpt report RUN... --out DIR`: `report.md` with the table of runs (each accuracy ± its standard error), how
each run's exported step compares with its start, and each run with the first on the same test images (paired,
95% interval, a verdict in words), and PNG plots: the training curves of every run, labelled or not (loss,
learning rate, embedding spread, RankMe), the monitor's test accuracy against pretraining steps with error bars
(the base as it is drawn as a line), and the speed-up. The plots need matplotlib (`pip install 'hpt[plots]'`):
without it the report is its tables and says so."""

from __future__ import annotations

from pathlib import Path

from hpt.checkpoints.provenance import AGAINST
from hpt.core.atomic import check_writable_folder
from hpt.eval.uncertainty import Difference, is_score, paired_difference, score_text, unpack
from hpt.extras import installed
from hpt.report.runs import RunRecord, load_run
from hpt.report.speedup import describe, speedup


def _metric_columns(runs: list[RunRecord]) -> list[tuple[str, str]]:
    columns = []
    for run in runs:
        for protocol, result in run.evals.items():
            for metric in result["metrics"]:
                if (protocol, metric) not in columns and "_val_" not in metric and is_score(metric):
                    columns.append((protocol, metric))
    return columns


def build_report(paths: list[Path], out: Path) -> Path:
    check_writable_folder(out)
    runs = [load_run(path) for path in paths]
    columns = _metric_columns(runs)
    lines = [
        "# hpt report",
        "",
        "| " + " | ".join(["run", "base", "method", "init", "steps", "wall time", *(m for _, m in columns)]) + " |",
        "|" + "---|" * (6 + len(columns)),
    ]
    for run in runs:
        p = run.provenance
        base = p.base.spec if p.base and p.base.spec else "-"
        cells = [run.name, Path(base).name, p.method or "?", run.init, str(p.steps), f"{p.wall_time_s:.0f} s"]
        scores = {protocol: run.evals.get(protocol, {}).get("metrics", {}) for protocol, _ in columns}
        cells += [score_text(scores[protocol], metric, percent=True) for protocol, metric in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if columns:
        lines += [
            "",
            "Each score of `hpt eval` on its test images, ± one standard error (binomial for an accuracy), and an "
            "accuracy's 95% interval (Wilson's).",
        ]
    lines += _comparisons(runs)

    metrics = sorted({run.curve_metric for run in runs if run.curve_metric})
    curves = [run for run in runs if run.curve and run.curve_metric == (metrics[0] if metrics else None)]
    curve_metric = metrics[0] if metrics else ""
    drawn = installed("plots")
    if drawn:
        lines += _drawn(runs, curves, metrics, out)
    else:
        lines += ["", "Plots: not drawn, as matplotlib is not installed here (`pip install 'hpt[plots]'`)."]
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
        if drawn:
            from hpt.report.plots import plot_speedups

            plot_speedups(speedups, out / "speedup.png")
            lines += ["", "![speed-up](speedup.png)"]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _comparisons(runs: list[RunRecord]) -> list[str]:
    """Each run's exported step against its start (the monitor's paired comparison), and each run against the
    first on the same `hpt eval` test images, image by image."""
    lines = []
    for run in runs:
        selected = run.provenance.selected
        if selected is None or selected.compared is None:
            continue
        for name, recorded in selected.compared.named():
            words = Difference.from_dict(recorded).words()
            score = selected.compared.score
            lines.append(f"- `{run.name}`, exported step {selected.step} against {AGAINST[name]}, {score}: {words}")
    reference = runs[0]
    for run in runs[1:]:
        for protocol, result in run.evals.items():
            theirs = reference.evals.get(protocol, {}).get("outcomes") or {}
            mine = result.get("outcomes") or {}
            if not theirs or theirs.get("test_files_sha256") != mine.get("test_files_sha256"):
                continue
            for metric in (m for m in mine if m in theirs and m in result["metrics"]):
                images = int(mine["images"])
                difference = paired_difference(unpack(mine[metric], images), unpack(theirs[metric], images))
                lines.append(f"- `{run.name}` against `{reference.name}`, {metric}: {difference.words()}")
    if not lines:
        return []
    return [
        "",
        "## Compared, image by image",
        "",
        "Paired on the same test images: exact McNemar's test on the images the two disagree on, with a 95% "
        "interval that agrees with it (`hpt.eval.uncertainty`); a difference whose interval holds 0 is not a finding.",
        "",
        *lines,
    ]


def _drawn(runs: list[RunRecord], curves: list[RunRecord], metrics: list[str], out: Path) -> list[str]:
    """The training curves and the accuracy against steps, drawn into `out`, and their lines of report.md."""
    from hpt.report.plots import plot_curves, plot_training

    plot_training(runs, out / "training.png")
    lines = [
        "",
        "![training curves](training.png)",
        "",
        "Training curves of every run: the loss and learning rate of each logged step, the embedding spread "
        "(`metrics.jsonl`), and the label-free RankMe of each evaluation (step 0 is the starting point).",
    ]
    if curves:
        plot_curves(curves, metrics[0], out / "accuracy_vs_steps.png")
        lines += [
            "",
            "![accuracy against pretraining steps](accuracy_vs_steps.png)",
            "",
            f"Curves: the online monitor's {metrics[0]} on its test images against pretraining steps, ± one "
            "standard error; step 0 is each run's starting point, so a run from a base starts at the base as it "
            "is (dashed line).",
        ]
        if len(metrics) > 1:
            lines += ["", f"Runs monitored by another score ({', '.join(metrics[1:])}) are not on this plot."]
    return lines
