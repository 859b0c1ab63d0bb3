"""Without labels, can a run pick its checkpoint and tell whether it beats its base?

Runs: MoCo v2 and SimCLR with hpt's defaults, and MoCo v2 with HPT's own recipe (BatchNorm statistics trained,
which can leave the base worse: the "does it beat the base?" question needs runs where the answer is no),
continued from the real ImageNet EfficientNet-Lite0 (`--init full`) on four real targets (Fashion-MNIST when
installed, MNIST-5k, scikit-learn's 8x8 digits, Google's emoji), `--seeds` seeds each, `--steps` steps at 32 px,
batch 64. Every `--every` steps and at step 0 (the base as it is) the
monitor scores the backbone by the linear probe on the labelled split (the truth) and, on 512 of the run's own
images without their labels, by every label-free criterion it logs: RankMe and alpha-ReQ (`hpt.eval.spectrum`),
view retrieval, alignment, uniformity, cluster agreement and neighbourhood agreement with step 0
(`hpt.eval.label_free`). Per criterion and run:
- its pick: the checkpoint it ranks first (step 0 included), and the regret, the linear accuracy of the
  checkpoint labels would pick minus that of its pick; the goal is a regret of at most 1 point in every run;
- its verdict on the pick ("better than the base" when the pick is not step 0), right when the linear probe
  agrees, and its verdict on the last step against step 0, the harder question. That truth is itself measured on
  a few hundred test images: each run's is "better", "worse" or "no detectable difference" by the last step's
  paired comparison with step 0 (exact McNemar on each test image's outcome; for runs of a study made before
  those were kept, `--rescore`, the unpaired bound: clear when the difference is over 1.96 times
  sqrt(p0 (1 - p0) / n + p1 (1 - p1) / n), which errs towards "no detectable difference"). The verdicts are
  scored on the runs whose truth is clear, beside what always answering "better" gets right on them, and the
  two compared run by run (exact McNemar over the runs where they differ);
- Spearman's correlation with the linear accuracy along the run.
References: "last step" (what a run without labels exports), "step 0" (keep the base) and "labels: validation"
(the linear probe's accuracy on its validation split, a fifth of the labelled training images: what a run with a
few labels picks by; its regret shows how far the 1-point goal is within the truth's own resolution).
Directions: higher is better for RankMe, view retrieval, cluster and neighbourhood agreement; lower for alignment
and uniformity; alpha-ReQ is best near 1 (its paper's reading).

    .venv/bin/python benchmarks/label_free.py --out benchmarks/results/label_free     # full: ~45 min, 2 cores
    .venv/bin/python benchmarks/label_free.py --quick --out /tmp/label_free           # the suite's: ~30 s
    .venv/bin/python benchmarks/label_free.py --rescore --out benchmarks/results/label_free  # judge again, no runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from evidence import unpaired_variance  # noqa: E402
from provenance import git_revision, header, markdown_header, today  # noqa: E402
from study import (  # noqa: E402
    mean_sd,
    run_settings,
    run_targets,
    save_figure,
    scored_run,
    seed_arguments,
    spearman,
    study_arguments,
    target_arguments,
    target_data,
    write_results,
)

from hpt.core.run_files import read_monitor  # noqa: E402
from hpt.eval.uncertainty import Difference, paired_difference, unpack  # noqa: E402

TRUTH = "linear_top1"
RECIPES: dict[str, dict] = {
    "hpt": {},  # hpt's defaults from a base: the base's BatchNorm statistics kept
    "bn-train": {"transfer.freeze_bn_statistics": False},  # HPT's own recipe, which fell under the base in the demo
}
RUNS = ["mocov2:hpt", "simclr:hpt", "mocov2:bn-train"]
"""METHOD:RECIPE of each target's runs (times the seeds): the recipe that can make the base worse gives the
"does it beat the base?" verdicts cases where the answer is no."""
CRITERIA: dict[str, Callable[[dict], float]] = {  # each signed so that higher is better
    "rankme": lambda e: e["rankme"],
    "alpha_req": lambda e: -abs(e["alpha_req"] - 1),
    "view_retrieval": lambda e: e["view_retrieval"],
    "alignment": lambda e: -e["alignment"],
    "uniformity": lambda e: -e["uniformity"],
    "cluster_agreement": lambda e: e["cluster_agreement"],
    "neighbour_agreement": lambda e: e["neighbour_agreement"],
    "last step": lambda e: e["step"],
    "step 0": lambda e: -e["step"],
    "labels: validation": lambda e: e["linear_val_top1"],
}
REFERENCES = ["last step", "step 0", "labels: validation"]
"""What the criteria are compared with; the rest are label-free criteria."""
UNCLEAR = "no detectable difference"
REGRET_GOAL = 0.01
"""The goal: the pick's linear accuracy within 1 point of the labels' pick."""


def run_target(target: str, args: argparse.Namespace) -> dict:
    data = target_data(target, args.out, args.unlabelled, args.per_class)
    runs = []
    for method, recipe in (name.split(":") for name in args.runs):
        for seed in range(args.seeds):
            settings = {**run_settings(args, seed), "method": method, "monitor.label_free_sample": args.sample,
                        "monitor.label_free_criteria": True, **RECIPES[recipe]}  # fmt: skip
            folder = args.out / "runs" / target / f"{method}-{recipe}-{seed}"
            run = scored_run(data, str(data / "pretrain"), folder, "full", args.steps, args.every, settings, args.reuse)
            evaluations = [{"step": e["step"], **{k: v for k, v in e.items() if isinstance(v, float)}}
                           for e in read_monitor(folder)]  # fmt: skip
            runs.append({"method": method, "recipe": recipe, "seed": seed, "seconds": run["seconds"],
                         "evaluations": evaluations, "outcomes": run["outcomes"]})  # fmt: skip
            curve = " ".join(f"{e['step']}:{e[TRUTH]:.3f}" for e in evaluations)
            print(f"{target} {method} {recipe} seed {seed}: {curve}")
    test_images = sum(1 for path in (data / "test").rglob("*") if path.is_file())
    for run in runs:
        run["truth"] = truth(run, test_images)
    return {"runs": runs, "test_images": test_images, "criteria": {n: judge(runs, key) for n, key in CRITERIA.items()}}


def truth(run: dict, test_images: int) -> str:
    """'better', 'worse' or 'no detectable difference': the run's last step against step 0 on the test split
    (the module's docstring)."""
    first, last = run["evaluations"][0], run["evaluations"][-1]
    if "outcomes" in run:
        record = run["outcomes"]
        a, b = (unpack(record["steps"][str(e["step"])], int(record["images"])) for e in (last, first))
        return paired_difference(a, b).verdict
    p0, p1 = first[TRUTH], last[TRUTH]
    error = math.sqrt(unpaired_variance(p1, p0, test_images))
    if abs(p1 - p0) <= 1.959963984540054 * error:
        return "no detectable difference"
    return "better" if p1 > p0 else "worse"


def judge(runs: list[dict], key: Callable[[dict], float]) -> dict:
    """One criterion over the runs: its picks, regrets, verdicts and correlations."""
    per_run = []
    for run in runs:
        e = run["evaluations"]
        truth, scores = [x[TRUTH] for x in e], [key(x) for x in e]
        pick = max(range(len(e)), key=lambda i: (scores[i], -i))  # ties: the earliest
        per_run.append(
            {
                "pick": e[pick]["step"],
                "regret": max(truth) - truth[pick],
                "pick_verdict_right": (pick > 0 and scores[pick] > scores[0]) == (truth[pick] > truth[0]),
                "last_verdict_right": (scores[-1] > scores[0]) == (truth[-1] > truth[0]),
                "last_verdict_right_clear": None if run["truth"] == UNCLEAR else (scores[-1] > scores[0]) == (
                    run["truth"] == "better"),
                "spearman": spearman(scores, truth),
            }
        )  # fmt: skip
    regrets = [r["regret"] for r in per_run]
    correlations = [r["spearman"] for r in per_run if r["spearman"] == r["spearman"]]
    return {
        "runs": per_run,
        "regret": mean_sd(regrets),
        "worst_regret": max(regrets),
        "within_goal": sum(r <= REGRET_GOAL + 1e-9 for r in regrets),
        "pick_verdicts_right": sum(r["pick_verdict_right"] for r in per_run),
        "last_verdicts_right": sum(r["last_verdict_right"] for r in per_run),
        **clear_verdicts(per_run, [run["truth"] for run in runs]),
        "spearman": mean_sd(correlations) if correlations else None,
    }


def clear_verdicts(per_run: list[dict], truths: list[str]) -> dict:
    """The verdicts on the last step over the runs whose truth is clear: right, what always answering "better"
    gets right, and the two compared run by run (exact McNemar over the runs where they differ)."""
    clear = [(r["last_verdict_right_clear"], t == "better") for r, t in zip(per_run, truths, strict=True)
             if t != UNCLEAR]  # fmt: skip
    entry = {"clear_runs": len(clear), "last_verdicts_right_clear": sum(right for right, _ in clear),
             "always_better_right_clear": sum(better for _, better in clear)}  # fmt: skip
    if clear:
        right, better = (torch.tensor(column) for column in zip(*clear))
        entry["against_always_better"] = paired_difference(right, better).to_dict()
    return entry


def every_run(results: dict) -> list[dict]:
    return [run for target in results["targets"].values() for run in target["runs"]]


def overall(results: dict) -> dict:
    """Every criterion over every target's runs together."""
    runs = every_run(results)
    return {name: {k: v for k, v in judge(runs, key).items() if k != "runs"} for name, key in CRITERIA.items()}


def plot(results: dict, path: Path) -> None:
    figure, (regret, verdicts) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(CRITERIA)
    s, runs = results["overall"], results["runs"]
    colours = ["grey" if n in REFERENCES else "tab:blue" for n in names]  # the references in grey
    regret.bar(names, [100 * s[n]["regret"]["mean"] for n in names], yerr=[100 * s[n]["regret"]["sd"] for n in names],
               capsize=3, color=colours)  # fmt: skip
    regret.axhline(100 * REGRET_GOAL, color="grey", linestyle="--", label="goal: 1 point")
    regret.set_ylabel("regret, linear accuracy points")
    regret.set_title(f"the pick's regret over {runs} runs (mean ± sd)")
    regret.legend()
    clear = s[names[0]]["clear_runs"]
    verdicts.bar(names, [s[n]["last_verdicts_right_clear"] / max(clear, 1) for n in names], color=colours)
    always = s[names[0]]["always_better_right_clear"] / max(clear, 1)
    verdicts.axhline(always, color="grey", linestyle=":", label="always 'better'")
    verdicts.set_title(f"verdict 'last step beats the base' right, share of the {clear} clear runs")
    verdicts.legend()
    for axis in (regret, verdicts):
        axis.tick_params(axis="x", rotation=60)
        axis.grid(alpha=0.3, axis="y")
    save_figure(figure, path)


def markdown(results: dict) -> str:
    lines = markdown_header("Without labels: picking the checkpoint, and telling whether it beats the base", results)
    runs, s = results["runs"], results["overall"]
    lines += [
        f"{runs} runs ({', '.join(results['targets'])}; {', '.join(results['runs_each'])}; {results['seeds']} seeds), "
        "each checkpoint scored by the linear probe (the truth) and by each criterion on unlabelled images. Goal: "
        f"a pick within {100 * REGRET_GOAL:.0f} point of the labels' pick in every run, with the right verdict.",
        "",
        "| criterion | regret, points (mean ± sd) | worst regret | runs within 1 point | pick's verdict right | "
        "last step's verdict right (all runs) | on clear runs | against always 'better' there | "
        "Spearman along a run (mean ± sd) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    truths = results["truths"]
    clear = truths["better"] + truths["worse"]
    for name, c in s.items():
        rho = f"{c['spearman']['mean']:+.2f} ± {c['spearman']['sd']:.2f}" if c["spearman"] else "-"
        against = c.get("against_always_better")
        lines.append(
            f"| {name} | {100 * c['regret']['mean']:.1f} ± {100 * c['regret']['sd']:.1f} | "
            f"{100 * c['worst_regret']:.1f} | {c['within_goal']}/{runs} | {c['pick_verdicts_right']}/{runs} | "
            f"{c['last_verdicts_right']}/{runs} | {c['last_verdicts_right_clear']}/{clear} | "
            f"{against_words(against)} | {rho} |"
        )
    met = [n for n, c in s.items() if c["within_goal"] == runs and c["pick_verdicts_right"] == runs]
    lines += [
        "",
        f"Criteria that meet the goal: {', '.join(met) if met else 'none'}.",
        "",
        f"By the linear probe the last step is better than the base in {truths['better']} of the {runs} runs, worse "
        f"in {truths['worse']}, and in {truths[UNCLEAR]} the test split cannot tell them apart ({truth_method(results)}"
        f'): the verdicts are scored on the {clear} clear runs, where always answering "better" is right '
        f"{truths['better']} times. Over all runs, by the probe's sign alone, the last step beats the base in "
        f"{results['last_beats_start']}/{runs}. The probe is itself a measurement: its standard error on each "
        "target's test split is given below, and the labels' pick, the best of "
        f"{len(every_run(results)[0]['evaluations'])} noisy accuracies, is biased upwards by about as much.",
        "",
        "![label-free](label_free.png)",
    ]
    lines += ["", "## Per target", ""]
    for target, t in results["targets"].items():
        level = statistics.mean(e[TRUTH] for run in t["runs"] for e in run["evaluations"])
        error = 100 * math.sqrt(level * (1 - level) / t["test_images"])
        runs_of = ", ".join(f"{r['method']}:{r['recipe']}:{r['seed']}" for r in t["runs"])
        lines += [
            f"### {target}",
            "",
            f"Runs, in the order of the table: {runs_of}. Test split: {t['test_images']} images; at the mean linear "
            f"accuracy, {100 * level:.1f}%, one accuracy's standard error is {error:.1f} points.",
            "",
            "| criterion | picks (step, per run) | regret per run, points |",
            "|---|---|---|",
        ]
        for name, c in t["criteria"].items():
            picks = ", ".join(str(r["pick"]) for r in c["runs"])
            regrets = ", ".join(f"{100 * r['regret']:.1f}" for r in c["runs"])
            lines.append(f"| {name} | {picks} | {regrets} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--runs", nargs="+", default=RUNS, help=f"METHOD:RECIPE, the recipes: {', '.join(RECIPES)}")
    parser.add_argument("--reuse", action="store_true", help="read finished runs of the same config, not rerun them")
    parser.add_argument("--sample", type=int, default=512, help="unlabelled images the criteria are computed on")
    seed_arguments(parser, 2)
    target_arguments(parser, ("fashion-mnist", "mnist-5k", "digits-8x8", "emoji"))
    parser.add_argument("--rescore", action="store_true", help="judge the runs of OUT/results.json again, no runs")
    args = parser.parse_args()
    if args.rescore:
        rescore(args.out)
        return
    if args.quick:
        args.steps, args.every, args.seeds, args.sample = 4, 2, 1, 32
        args.image_size, args.batch_size, args.queue, args.unlabelled = 16, 16, 64, 64
        args.per_class, args.workers, args.targets = 5, 0, ["mnist-5k"]
    results = run_targets(header("label_free.py", args), args, run_target)
    results |= {"runs_each": args.runs, "seeds": args.seeds, "references": REFERENCES}
    finish(results, args.out)


def against_words(record: dict | None) -> str:
    """The verdicts against always answering "better", over the clear runs: 'no detectable difference (3 right
    where it is wrong, 2 the other way; exact McNemar p = 1.000)'."""
    if record is None:
        return "-"
    d = Difference.from_dict(record)
    differing = f"{d.gained} right where it is wrong, {d.lost} the other way"
    return f"{d.verdict} ({differing}; exact McNemar p = {d.p_value:.3f})"


def truth_method(results: dict) -> str:
    if all("outcomes" in run for run in every_run(results)):
        return "the last step against step 0, exact McNemar on each test image"
    return "the last step against step 0, by the unpaired bound: the study kept no per-image outcomes"


def finish(results: dict, out: Path) -> None:
    """The judgements over every run, the plot and the result files."""
    runs = every_run(results)
    results["runs"] = len(runs)
    results["last_beats_start"] = sum(r["evaluations"][-1][TRUTH] > r["evaluations"][0][TRUTH] for r in runs)
    results["truths"] = {t: sum(r["truth"] == t for r in runs) for t in ("better", "worse", UNCLEAR)}
    results["overall"] = overall(results)
    plot(results, out / "label_free.png")
    write_results(out, results, markdown(results))


def rescore(out: Path) -> None:
    """Judge a finished study's runs again by today's rules (each run's truth, the verdicts on clear runs): its
    runs, command and date stay; the revision that judged them is recorded beside."""
    results = json.loads((out / "results.json").read_text())
    for target in results["targets"].values():
        for run in target["runs"]:
            run["truth"] = truth(run, target["test_images"])
        target["criteria"] = {name: judge(target["runs"], key) for name, key in CRITERIA.items()}
    results["rescored"] = {"date": today(), "git": git_revision()}
    finish(results, out)


if __name__ == "__main__":
    main()
