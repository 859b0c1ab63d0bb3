"""HPT's findings as the committed studies say them: the README's tables, rendered from `results/convergence`,
`results/robustness` and `results/label_free` by fixed rules, so that every number in it traces to a committed
results.json (a test checks the README's copy against this).

Each finding is counted over (target, seed) pairs, on the linear probe (kNN in the studies' own pages): it holds
when every pair agrees, does not hold when none does, and holds partly otherwise.
- converges faster: HPT reaches scratch's best accuracy (of scratch's whole budget) in fewer steps than scratch
  needed to reach it (HPT's step 0, the base as it is, counts);
- better accuracy than scratch: HPT's last step beats scratch's best;
- better than its base: HPT's (HPT-BN's) last step beats the base as it is;
- more robust to the augmentation policy (the amount of data): HPT's spread, best minus worst over the policies
  (the data fractions), is smaller than scratch's in the same seed.
A second table, from `results/label_free`, holds hpt's own goal without labels, counted over runs: a pick within
1 point of the labels' pick (by the best label-free criterion, the others and the references beside it), and the
verdict "the last step beats the base" right. A third, from `results/distill`, holds distillation of the ImageNet
Lite2 into the Lite0 base with the loss that study picked (on its validation split), at each teacher size: the
student's last step against the base as it is, against HPT's (MoCo v2, same seed), and within 1 point of the
teacher as it is. A fourth, from `results/dino`, holds DINO from the same base: its last step against the base as
it is and against HPT's (same target, same seed), and the time a step took.

    .venv/bin/python benchmarks/findings.py            # prints the table
    .venv/bin/python benchmarks/findings.py --write    # and puts it into README.md between its markers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from study import mean_sd

from hpt.report.speedup import steps_to_reach

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parents[1] / "README.md"
BEGIN, END = "<!-- findings: begin (benchmarks/findings.py --write) -->", "<!-- findings: end -->"
SCORE = "linear"


def verdict(hits: int, total: int) -> str:
    return "**holds**" if hits == total else "**does not hold**" if hits == 0 else "**holds partly**"


def pct(values: list[float]) -> str:
    m = mean_sd(values)
    return f"{m['mean']:.1%} ± {m['sd']:.1%}"


def convergence_rows(results: dict) -> list[tuple[str, list[str], int, int]]:
    """(finding, its text per target, pairs that agree, pairs) for the convergence study's findings."""
    faster, beats_scratch, beats_base, bn_beats_base = [], [], [], []
    counts = {key: [0, 0] for key in ("faster", "scratch", "base", "bn")}
    for target, result in results["targets"].items():
        runs = result["runs"]
        scratch, hpt, hpt_bn = runs["scratch"], runs["HPT"], runs["HPT-BN"]
        base = [r["curve"][0][SCORE] for r in hpt]
        reached, needed, best = [], [], []
        for mine, other in zip(scratch, hpt):
            curve = [(c["step"], c[SCORE]) for c in mine["curve"]]
            top = max(a for _, a in curve)
            best.append(top)
            needed.append(steps_to_reach(curve, top))
            reached.append(steps_to_reach([(c["step"], c[SCORE]) for c in other["curve"]], top))
        hits = sum(r is not None and n is not None and r < n for r, n in zip(reached, needed))
        counts["faster"][0] += hits
        counts["faster"][1] += len(needed)
        steps = ", ".join("never" if r is None else str(r) for r in reached)
        faster.append(f"{target}: HPT at step {steps} against scratch's {', '.join(map(str, needed))}")
        last = [r["curve"][-1][SCORE] for r in hpt]
        last_bn = [r["curve"][-1][SCORE] for r in hpt_bn]
        for key, mine, others in (("scratch", last, best), ("base", last, base), ("bn", last_bn, base)):
            counts[key][0] += sum(a > b for a, b in zip(mine, others))
            counts[key][1] += len(mine)
        steps_hpt, steps_scratch = hpt[0]["steps"], scratch[0]["steps"]
        beats_scratch.append(f"{target}: {pct(last)} at step {steps_hpt} against {pct(best)} (best of {steps_scratch})")
        beats_base.append(f"{target}: {pct(last)} against {pct(base)}")
        bn_beats_base.append(f"{target}: {pct(last_bn)} against {pct(base)}")
    return [
        ("converges faster than scratch (HPT reaches scratch's best first)", faster, *counts["faster"]),
        ("better accuracy than scratch (HPT's last step over scratch's best)", beats_scratch, *counts["scratch"]),
        ("HPT beats its base (last step over the base as it is)", beats_base, *counts["base"]),
        ("HPT-BN beats its base (last step over the base as it is)", bn_beats_base, *counts["bn"]),
    ]


def robustness_rows(results: dict) -> list[tuple[str, list[str], int, int]]:
    rows = []
    for study, what in (("policies", "the augmentation policy"), ("fractions", "the amount of pretraining data")):
        texts, hits, total = [], 0, 0
        for target, result in results["targets"].items():
            spreads = {}
            for name in ("HPT", "scratch"):
                finals = [[run["curve"][-1][SCORE] for run in runs] for runs in result[study][name].values()]
                spreads[name] = [max(seed) - min(seed) for seed in zip(*finals)]
            hits += sum(a < b for a, b in zip(spreads["HPT"], spreads["scratch"]))
            total += len(spreads["HPT"])
            hpt, scratch = mean_sd(spreads["HPT"]), mean_sd(spreads["scratch"])
            texts.append(
                f"{target}: spread {100 * hpt['mean']:.1f} ± {100 * hpt['sd']:.1f} points against scratch's "
                f"{100 * scratch['mean']:.1f} ± {100 * scratch['sd']:.1f}"
            )
        rows.append((f"more robust to {what} than scratch (smaller spread)", texts, hits, total))
    return rows


def label_free_rows(results: dict) -> list[tuple[str, list[str], int, int]]:
    """hpt's own goal without labels, by the best label-free criterion (most runs within the goal, then the
    smallest mean regret), beside the references."""
    judged, runs = results["overall"], results["runs"]
    criteria = [name for name in judged if name not in results["references"]]
    best = max(criteria, key=lambda n: (judged[n]["within_goal"], -judged[n]["regret"]["mean"]))

    def regret(name: str) -> str:
        r = judged[name]["regret"]
        return f"{name} {100 * r['mean']:.1f} ± {100 * r['sd']:.1f} ({judged[name]['within_goal']}/{runs})"

    others = sorted(criteria, key=lambda n: judged[n]["regret"]["mean"])
    pick = [f"best: {regret(best)}", *(regret(n) for n in others if n != best), *map(regret, results["references"])]
    always = results["last_beats_start"]  # what always saying "better" gets right
    told = max(criteria, key=lambda n: judged[n]["last_verdicts_right"])
    tell = [f"best: {told} right in {judged[told]['last_verdicts_right']}/{runs} runs",
            f"always saying 'better': {always}/{runs}"]  # fmt: skip
    return [
        ("without labels, pick the checkpoint within 1 point of the labels' pick: points under it, mean ± sd "
         "(runs within 1 point)", pick, judged[best]["within_goal"], runs),
        ("without labels, tell whether the last step beats the base", tell, judged[told]["last_verdicts_right"], runs),
    ]  # fmt: skip


def distill_rows(results: dict) -> list[tuple[str, list[str], int, int]]:
    """Distillation's findings for the loss the study picked, at each teacher size, over (target, seed) pairs."""
    loss, rows = results["summary"]["picked"], []
    sizes = sorted({int(name.rsplit("-", 1)[1]) for name in next(iter(results["targets"].values()))["runs"]
                    if name.startswith(f"{loss}-")})  # fmt: skip
    for size in sizes:
        texts: dict[str, list[str]] = {"base": [], "hpt": [], "teacher": []}
        counts = {key: [0, 0] for key in texts}
        for target, result in results["targets"].items():
            student = [r["curve"][-1][SCORE] for r in result["runs"][f"{loss}-{size}"]]
            hpt = [r["curve"][-1][SCORE] for r in result["runs"]["mocov2"]]
            base = [r["curve"][0][SCORE] for r in result["runs"][f"{loss}-{size}"]]
            teacher = result["as_it_is"]["teacher"][str(size)][SCORE]
            for key, others in (("base", base), ("hpt", hpt)):
                counts[key][0] += sum(a > b for a, b in zip(student, others))
                counts[key][1] += len(student)
            counts["teacher"][0] += sum(a >= teacher - 0.01 for a in student)
            counts["teacher"][1] += len(student)
            texts["base"].append(f"{target}: {pct(student)} against {pct(base)}")
            texts["hpt"].append(f"{target}: {pct(student)} against {pct(hpt)}")
            texts["teacher"].append(f"{target}: {pct(student)} against the teacher's {teacher:.1%}")
        what = f"{loss} from the Lite2 at {size} px"
        rows += [  # fmt: skip
            (f"{what} beats the Lite0 base (last step over the base as it is)", texts["base"], *counts["base"]),
            (f"{what} beats HPT (MoCo v2 from the same base, same steps)", texts["hpt"], *counts["hpt"]),
            (
                f"{what} comes within 1 point of the teacher as it is, or passes it",
                texts["teacher"],
                *counts["teacher"],
            ),
        ]
    return rows


def dino_rows(results: dict) -> list[tuple[str, list[str], int, int]]:
    """DINO's findings over (target, seed) pairs: against the base as it is and against HPT (MoCo v2)."""
    texts: dict[str, list[str]] = {"base": [], "hpt": []}
    counts = {key: [0, 0] for key in texts}
    for target, result in results["targets"].items():
        dino = [r["curve"][-1][SCORE] for r in result["runs"]["dino"]]
        others = {"base": [r["curve"][0][SCORE] for r in result["runs"]["dino"]],
                  "hpt": [r["curve"][-1][SCORE] for r in result["runs"]["mocov2"]]}  # fmt: skip
        for key, other in others.items():
            counts[key][0] += sum(a > b for a, b in zip(dino, other, strict=True))
            counts[key][1] += len(dino)
            texts[key].append(f"{target}: {pct(dino)} against {pct(other)}")
    settings = results["summary"]["settings"]
    ratio = settings["dino"]["seconds_per_step"] / settings["mocov2"]["seconds_per_step"]
    return [
        ("DINO beats the Lite0 base (last step over the base as it is)", texts["base"], *counts["base"]),
        (f"DINO beats HPT (MoCo v2 from the same base, same steps; a DINO step took {ratio:.1f}x as long)",
         texts["hpt"], *counts["hpt"]),
    ]  # fmt: skip


def table(first: str, measured: str, counted: str, rows: list[tuple[str, list[str], int, int]]) -> list[str]:
    """One markdown table of findings: its header's three cells, then a row per finding with its verdict."""
    lines = [f"| {first} | {measured} | verdict ({counted} that agree) |", "|---|---|---|"]
    for finding, texts, hits, total in rows:
        lines.append(f"| {finding} | {'; '.join(texts)} | {verdict(hits, total)} ({hits}/{total}) |")
    return lines


def render(root: Path = RESULTS) -> str:
    results = {name: json.loads((root / name / "results.json").read_text())
               for name in ("convergence", "robustness", "label_free", "distill", "dino")}  # fmt: skip
    seeds = len(next(iter(results["convergence"]["targets"].values()))["runs"]["HPT"])
    pairs = "(target, seed) pairs"
    tables = [
        table("HPT's finding", f"measured here: linear probe, mean ± sd over {seeds} seeds", pairs,
              convergence_rows(results["convergence"]) + robustness_rows(results["robustness"])),
        table("hpt's goal without labels",
              f"measured here: {results['label_free']['runs']} runs of `benchmarks/label_free.py`, linear probe",
              "runs", label_free_rows(results["label_free"])),
        table("distilling the bigger ImageNet model into the Lite0 (`benchmarks/distill.py`)",
              f"measured here: linear probe, mean ± sd over {results['distill']['seeds']} seeds", pairs,
              distill_rows(results["distill"])),
        table("DINO from the Lite0 (`benchmarks/dino.py`)",
              f"measured here: linear probe, mean ± sd over {results['dino']['seeds']} seeds", pairs,
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
