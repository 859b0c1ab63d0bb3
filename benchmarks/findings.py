"""HPT's findings as the committed studies say them: the README's tables, rendered from `results/convergence`,
`results/robustness`, `results/label_free`, `results/distill` and `results/dino` by fixed rules, so that every
number in it traces to a committed results.json (a test checks the README's copy against this).

Each finding is a mean paired difference over targets and seeds on the linear probe (kNN in the studies' own
pages), with a 95% interval that carries both the seeds' and the test images' error (`evidence.py`: from each test
image's outcome where the study kept them, the unpaired bound otherwise, marked so). It **holds** when the interval
lies above 0, is **shown the other way** when it lies below, and is **not shown** otherwise; the (target, seed)
pairs whose difference is above 0 are counted beside it.
- converges faster: HPT's accuracy at its first evaluation whose interval over scratch's best (of scratch's whole
  budget, on the same test images) lies above 0; it holds when that step comes before the step at which any seed of
  scratch reached its best (HPT's step 0, the base as it is, counts);
- better accuracy than scratch: HPT's last step minus scratch's best (its highest test score: a pick on the split
  that scores it, which favours scratch, so both findings against it are conservative);
- better than its base: HPT's (HPT-BN's) last step minus its step 0, the base as it is;
- more robust to the augmentation policy (the amount of data): scratch's spread minus HPT's in the same seed, a
  spread being best minus worst over the policies (the data fractions).
A second table, from `results/label_free`, holds hpt's own goal without labels, counted over runs: a pick within
1 point of the labels' pick (by the best label-free criterion, the others and the references beside it), and the
verdict "the last step beats the base", scored only on the runs whose truth is clear (the last step against step 0
on the test split, exact McNemar where the study kept per-image outcomes, else the unpaired bound) beside what
always answering "better" gets right there. A third, from `results/distill`, holds distillation of the ImageNet
Lite2 into the Lite0 base with the loss that study picked (on its validation split), at each teacher size: the
student's last step against the base as it is, against HPT's (MoCo v2, same seed), and within 1 point of the
teacher as it is (student minus teacher plus 1 point). A fourth, from `results/dino`, holds DINO from the same
base: its last step against the base as it is and against HPT's (same target, same seed), and the time a step took.

    .venv/bin/python benchmarks/findings.py            # prints the table
    .venv/bin/python benchmarks/findings.py --write    # and puts it into README.md between its markers
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from evidence import Evidence, Finding, accuracies, curve_outcomes, finding, from_outcomes, unpaired
from study import labelled_test_images, mean_sd

from hpt.eval.uncertainty import Difference
from hpt.report.speedup import steps_to_reach

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parents[1] / "README.md"
BEGIN, END = "<!-- findings: begin (benchmarks/findings.py --write) -->", "<!-- findings: end -->"
SCORE = "linear"
Row = tuple[str, list[str], Finding | None]
"""A finding, its text per target, and its evidence (None where it cannot be computed)."""
POINTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "first": lambda curve: curve[..., 0],
    "last": lambda curve: curve[..., -1],
    "best": lambda curve: curve.max(axis=-1),
}
"""Which evaluation of each seed's curve (`seeds x evaluations` accuracies) a finding takes."""


def pct(values: list[float]) -> str:
    m = mean_sd(values)
    return f"{m['mean']:.1%} ± {m['sd']:.1%}"


def images(results: dict, target: str) -> int:
    """The target's test images, for studies that kept only accuracies: its classes times `--per-class`."""
    wanted = re.search(r"--per-class (\d+)", results["command"])
    return labelled_test_images(target, int(wanted.group(1)) if wanted else 50)


def scores(runs: list[dict]) -> np.ndarray:
    """`seeds x evaluations` linear accuracies of one setting's runs on a target."""
    return np.array([[point[SCORE] for point in run["curve"]] for run in runs])


def at(runs: list[dict], point: str) -> list[float]:
    """Each seed's linear accuracy at `point` of its curve."""
    return POINTS[point](scores(runs)).tolist()


def compared(a: list[dict], a_at: str, b: list[dict] | float, b_at: str, test_images: int) -> Evidence:
    """One target's evidence for `a` at `a_at` minus `b` at `b_at` (a setting's runs, seed by seed; or a score
    every seed shares), paired image by image where both kept per-image outcomes."""
    first = curve_outcomes(a)
    second = curve_outcomes(b) if isinstance(b, list) else None
    if first is not None and second is not None:
        return from_outcomes(
            lambda i: POINTS[a_at](accuracies(first, i)) - POINTS[b_at](accuracies(second, i)), first.shape[-1]
        )
    other = POINTS[b_at](scores(b)) if isinstance(b, list) else [b]
    return unpaired(POINTS[a_at](scores(a)), other, test_images)


def convergence_rows(results: dict) -> list[Row]:
    """The convergence study's findings: faster than scratch, better than scratch, HPT and HPT-BN over the base."""
    texts: dict[str, list[str]] = {key: [] for key in ("faster", "scratch", "base", "bn")}
    evidence: dict[str, list[Evidence]] = {key: [] for key in ("scratch", "base", "bn")}
    reached_best = []
    for target, result in results["targets"].items():
        runs = result["runs"]
        scratch, hpt, hpt_bn = runs["scratch"], runs["HPT"], runs["HPT-BN"]
        n = images(results, target)
        needed = [steps_to_reach(c := [(p["step"], p[SCORE]) for p in r["curve"]], max(a for _, a in c))
                  for r in scratch]  # fmt: skip
        reached_best += needed
        texts["faster"].append(f"{target}: scratch reached its best at step {', '.join(map(str, needed))}")
        evidence["scratch"].append(compared(hpt, "last", scratch, "best", n))
        evidence["base"].append(compared(hpt, "last", hpt, "first", n))
        evidence["bn"].append(compared(hpt_bn, "last", hpt_bn, "first", n))
        last, base, best = at(hpt, "last"), at(hpt, "first"), at(scratch, "best")
        steps = f"at step {hpt[0]['steps']} against {pct(best)} (best of {scratch[0]['steps']})"
        texts["scratch"].append(f"{target}: {pct(last)} {steps}")
        texts["base"].append(f"{target}: {pct(last)} against {pct(base)}")
        texts["bn"].append(f"{target}: {pct(at(hpt_bn, 'last'))} against {pct(at(hpt_bn, 'first'))}")
    step, faster = first_step_over_best(results)
    if faster.verdict != "holds":
        texts["faster"].insert(0, f"HPT passes scratch's best at none of its steps (last: step {step})")
    elif step >= min(reached_best):  # past scratch's best only once scratch itself got there: not faster
        texts["faster"].insert(0, f"HPT passes scratch's best at step {step}, no earlier than scratch reached it")
        faster = None
    else:
        texts["faster"].insert(0, f"HPT at step {step} minus scratch's best")
    return [
        ("converges faster than scratch (HPT passes scratch's best before scratch reaches it)", texts["faster"],
         faster),
        ("better accuracy than scratch (HPT's last step minus scratch's best)", texts["scratch"],
         finding(evidence["scratch"])),
        ("HPT beats its base (last step minus the base as it is)", texts["base"], finding(evidence["base"])),
        ("HPT-BN beats its base (last step minus the base as it is)", texts["bn"], finding(evidence["bn"])),
    ]  # fmt: skip


def first_step_over_best(results: dict) -> tuple[int, Finding]:
    """HPT's first evaluation (same step on every target) whose accuracy minus scratch's best holds, and that
    finding; the last evaluation's when none does."""
    targets = list(results["targets"].values())
    steps = [p["step"] for p in targets[0]["runs"]["HPT"][0]["curve"]]
    for index in range(len(steps)):
        evidence = []
        for name, result in results["targets"].items():
            hpt, scratch = result["runs"]["HPT"], result["runs"]["scratch"]
            at = [{**run, "curve": run["curve"][: index + 1]} for run in hpt]  # so that "last" is this step
            evidence.append(compared(at, "last", scratch, "best", images(results, name)))
        found = finding(evidence)
        if found.verdict == "holds":
            break
    return steps[index], found


def robustness_rows(results: dict) -> list[Row]:
    rows: list[Row] = []
    for study, what in (("policies", "the augmentation policy"), ("fractions", "the amount of pretraining data")):
        texts, evidence = [], []
        for target, result in results["targets"].items():
            spreads = {}
            for name in ("HPT", "scratch"):
                finals = [[run["curve"][-1][SCORE] for run in runs] for runs in result[study][name].values()]
                spreads[name] = [max(seed) - min(seed) for seed in zip(*finals)]
            hpt, scratch = mean_sd(spreads["HPT"]), mean_sd(spreads["scratch"])
            texts.append(
                f"{target}: spread {100 * hpt['mean']:.1f} ± {100 * hpt['sd']:.1f} points against scratch's "
                f"{100 * scratch['mean']:.1f} ± {100 * scratch['sd']:.1f}"
            )
            evidence.append(spread_evidence(result[study]))
        found = None if any(e is None for e in evidence) else finding([e for e in evidence if e is not None])
        if found is None:
            texts.insert(0, "no interval: the study's runs predate per-image outcomes (and a spread's test-image error "
                         "has no unpaired bound), so it stays unshown until the study is run again")  # fmt: skip
        rows.append((f"more robust to {what} than scratch (scratch's spread minus HPT's)", texts, found))
    return rows


def spread_evidence(study: dict[str, dict[str, list[dict]]]) -> Evidence | None:
    """Scratch's spread minus HPT's, seed by seed, from each test image's outcome at the settings' last steps;
    None when a run kept none (a spread's image error has no unpaired bound here)."""
    last = {}
    for name in ("HPT", "scratch"):
        curves = [curve_outcomes(runs) for runs in study[name].values()]
        if any(c is None for c in curves):
            return None
        last[name] = np.stack([c[:, -1] for c in curves if c is not None])  # settings x seeds x images

    def spread(outcomes: np.ndarray, index: np.ndarray) -> np.ndarray:
        scored = accuracies(outcomes, index)
        return scored.max(axis=0) - scored.min(axis=0)

    return from_outcomes(lambda i: spread(last["scratch"], i) - spread(last["HPT"], i), last["HPT"].shape[-1])


def label_free_rows(results: dict) -> list[tuple[str, list[str], str]]:
    """hpt's own goal without labels, by the best label-free criterion (most runs within the goal, then the
    smallest mean regret), beside the references; and the verdict on the last step, scored on the runs whose truth
    is clear, against always answering "better" there. Each with its verdict cell."""
    judged, runs = results["overall"], results["runs"]
    criteria = [name for name in judged if name not in results["references"]]
    best = max(criteria, key=lambda n: (judged[n]["within_goal"], -judged[n]["regret"]["mean"]))

    def regret(name: str) -> str:
        r = judged[name]["regret"]
        return f"{name} {100 * r['mean']:.1f} ± {100 * r['sd']:.1f} ({judged[name]['within_goal']}/{runs})"

    others = sorted(criteria, key=lambda n: judged[n]["regret"]["mean"])
    pick = [f"best: {regret(best)}", *(regret(n) for n in others if n != best), *map(regret, results["references"])]
    within = judged[best]["within_goal"]
    told = max(criteria, key=lambda n: (judged[n]["last_verdicts_right_clear"], judged[n]["last_verdicts_right"]))
    c, truths = judged[told], results["truths"]
    against = Difference.from_dict(c["against_always_better"])
    tell = [f"{truths['better']} runs better, {truths['worse']} worse, {truths['no detectable difference']} "
            "not told apart by their test split", f"best: {told} right in {c['last_verdicts_right_clear']} of the "
            f"{c['clear_runs']} clear runs, always saying 'better' in {c['always_better_right_clear']}",
            f"{told} against always 'better' there: {against.gained} right where it is wrong, {against.lost} the "
            f"other way (exact McNemar p = {against.p_value:.2f})"]  # fmt: skip
    beats = "**met**" if against.verdict == "better" else "**not shown**"
    return [
        ("without labels, pick the checkpoint within 1 point of the labels' pick: points under it, mean ± sd "
         "(runs within 1 point)", pick, f"{'**met**' if within == runs else '**not met**'} ({within}/{runs} runs)"),
        ("without labels, tell whether the last step beats the base, better than always answering 'better'", tell,
         f"{beats} ({c['last_verdicts_right_clear']} against {c['always_better_right_clear']} of {c['clear_runs']})"),
    ]  # fmt: skip


def distill_rows(results: dict) -> list[Row]:
    """Distillation's findings for the loss the study picked, at each teacher size."""
    loss, rows = results["summary"]["picked"], []
    sizes = sorted({int(name.rsplit("-", 1)[1]) for name in next(iter(results["targets"].values()))["runs"]
                    if name.startswith(f"{loss}-")})  # fmt: skip
    for size in sizes:
        texts: dict[str, list[str]] = {"base": [], "hpt": [], "teacher": []}
        evidence: dict[str, list[Evidence]] = {key: [] for key in texts}
        for target, result in results["targets"].items():
            student_runs, hpt_runs = result["runs"][f"{loss}-{size}"], result["runs"]["mocov2"]
            student, hpt, base = at(student_runs, "last"), at(hpt_runs, "last"), at(student_runs, "first")
            teacher = result["as_it_is"]["teacher"][str(size)][SCORE]
            n = images(results, target)
            evidence["base"].append(compared(student_runs, "last", student_runs, "first", n))
            evidence["hpt"].append(compared(student_runs, "last", hpt_runs, "last", n))
            evidence["teacher"].append(unpaired(student, [teacher], n, offset=0.01))  # its outcomes are not kept
            texts["base"].append(f"{target}: {pct(student)} against {pct(base)}")
            texts["hpt"].append(f"{target}: {pct(student)} against {pct(hpt)}")
            texts["teacher"].append(f"{target}: {pct(student)} against the teacher's {teacher:.1%}")
        what = f"{loss} from the Lite2 at {size} px"
        rows += [  # fmt: skip
            (f"{what} beats the Lite0 base (last step minus the base as it is)", texts["base"],
             finding(evidence["base"])),
            (f"{what} beats HPT (minus MoCo v2 from the same base, same steps)", texts["hpt"],
             finding(evidence["hpt"])),
            (f"{what} comes within 1 point of the teacher as it is, or passes it (minus the teacher, plus 1 point)",
             texts["teacher"], finding(evidence["teacher"])),
        ]  # fmt: skip
    return rows


def dino_rows(results: dict) -> list[Row]:
    """DINO's findings: against the base as it is and against HPT (MoCo v2), seed by seed."""
    texts: dict[str, list[str]] = {"base": [], "hpt": []}
    evidence: dict[str, list[Evidence]] = {key: [] for key in texts}
    for target, result in results["targets"].items():
        dino_runs, hpt_runs = result["runs"]["dino"], result["runs"]["mocov2"]
        dino = at(dino_runs, "last")
        others = {"base": at(dino_runs, "first"), "hpt": at(hpt_runs, "last")}
        n = images(results, target)
        evidence["base"].append(compared(dino_runs, "last", dino_runs, "first", n))
        evidence["hpt"].append(compared(dino_runs, "last", hpt_runs, "last", n))
        for key, other in others.items():
            texts[key].append(f"{target}: {pct(dino)} against {pct(other)}")
    settings = results["summary"]["settings"]
    ratio = settings["dino"]["seconds_per_step"] / settings["mocov2"]["seconds_per_step"]
    return [
        ("DINO beats the Lite0 base (last step minus the base as it is)", texts["base"], finding(evidence["base"])),
        (f"DINO beats HPT (minus MoCo v2 from the same base, same steps; a DINO step took {ratio:.1f}x as long)",
         texts["hpt"], finding(evidence["hpt"])),
    ]  # fmt: skip


def table(first: str, measured: str, rows: list[Row]) -> list[str]:
    """One markdown table of findings: a row per finding with its difference, interval and verdict."""
    lines = [f"| {first} | {measured} | mean paired difference over targets and seeds (95% CI) | verdict "
             "((target, seed) pairs above 0) |", "|---|---|---|---|"]  # fmt: skip
    for name, texts, found in rows:
        if found is None:
            lines.append(f"| {name} | {'; '.join(texts)} | - | **not shown** |")
            continue
        lines.append(f"| {name} | {'; '.join(texts)} | {found.interval()} | **{found.verdict}** "
                     f"({found.wins}/{found.pairs}) |")  # fmt: skip
    return lines


def goal_table(first: str, measured: str, rows: list[tuple[str, list[str], str]]) -> list[str]:
    lines = [f"| {first} | {measured} | verdict |", "|---|---|---|"]
    lines += [f"| {name} | {'; '.join(texts)} | {verdict} |" for name, texts, verdict in rows]
    return lines


def render(root: Path = RESULTS) -> str:
    results = {name: json.loads((root / name / "results.json").read_text())
               for name in ("convergence", "robustness", "label_free", "distill", "dino")}  # fmt: skip
    seeds = len(next(iter(results["convergence"]["targets"].values()))["runs"]["HPT"])
    tables = [
        table("HPT's finding", f"measured here: linear probe, mean ± sd over {seeds} seeds",
              convergence_rows(results["convergence"]) + robustness_rows(results["robustness"])),
        goal_table("hpt's goal without labels",
                   f"measured here: {results['label_free']['runs']} runs of `benchmarks/label_free.py`, linear probe",
                   label_free_rows(results["label_free"])),
        table("distilling the bigger ImageNet model into the Lite0 (`benchmarks/distill.py`)",
              f"measured here: linear probe, mean ± sd over {results['distill']['seeds']} seeds",
              distill_rows(results["distill"])),
        table("DINO from the Lite0 (`benchmarks/dino.py`)",
              f"measured here: linear probe, mean ± sd over {results['dino']['seeds']} seeds",
              dino_rows(results["dino"])),
    ]  # fmt: skip
    return "\n\n".join("\n".join(lines) for lines in tables) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="put the table into README.md between its markers")
    args = parser.parse_args()
    table = render()
    print(table, end="")
    if args.write:
        text = README.read_text()
        head, rest = text.split(BEGIN)
        _, tail = rest.split(END)
        README.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


if __name__ == "__main__":
    main()
