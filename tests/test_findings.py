"""The README's tables of findings are the ones `benchmarks/findings.py` renders from the committed results of the
convergence, robustness, label-free, distillation and DINO studies: a number edited by hand, or results re-run without
re-rendering the tables, fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hpt.eval.uncertainty import pack

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import findings  # noqa: E402

BEGIN, END = "<!-- findings: begin (benchmarks/findings.py --write) -->", "<!-- findings: end -->"


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_the_readme_states_the_findings_as_the_committed_results_say():
    rendered = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "findings.py")], capture_output=True, text=True, check=True
    ).stdout
    readme = (ROOT / "README.md").read_text()
    assert readme.count(BEGIN) == readme.count(END) == 1
    in_readme = readme.split(BEGIN)[1].split(END)[0].strip("\n")
    assert in_readme == rendered.strip("\n")
    hpt, label_free, distill, dino = (table.splitlines()[2:] for table in rendered.strip("\n").split("\n\n"))
    assert len(hpt) == 6  # four convergence findings, two robustness findings
    assert len(label_free) == 2  # the pick, the verdict on the last step
    assert len(distill) == 6  # against the base, HPT and the teacher, at each of two teacher sizes
    assert len(dino) == 2  # against the base, against HPT
    verdict = r"(\*\*(holds|not shown|shown the other way)\*\* \(\d+/\d+\)|- \| \*\*not shown\*\*) \|$"
    assert all(re.search(verdict, row) for row in hpt + distill + dino)
    assert all(re.search(r"\*\*(met|not met|not shown)\*\* \(.*\) \|$", row) for row in label_free)


def curve_runs(outcomes: np.ndarray, steps: list[int]) -> list[dict]:
    """A setting's runs as a study keeps them, from `seeds x evaluations x images` outcomes."""
    return [
        {
            "steps": steps[-1],
            "curve": [{"step": s, "linear": float(c.mean()), "kNN": 0.0} for s, c in zip(steps, seed)],
            "outcomes": {"score": "linear_top1", "images": outcomes.shape[-1],
                         "steps": {str(s): pack(torch.from_numpy(c)) for s, c in zip(steps, seed)}},
        }
        for seed in outcomes
    ]  # fmt: skip


def test_the_convergence_findings_follow_their_rules_on_planted_outcomes():
    """Two targets, 3 seeds, 400 test images. The base gets the first 240 right; HPT's last step 40 more in every
    seed (+10 points: holds); HPT-BN's last step the same images as the base but 8 swapped per seed (0 points: not
    shown); scratch never passes 30%, its best at its second evaluation."""
    rng = np.random.default_rng(0)
    base = np.arange(400) < 240
    targets = {}
    for target in ("mnist-5k", "emoji"):
        hpt = np.stack([np.stack([base, base | (np.arange(400) < 260), base | (np.arange(400) < 280)])] * 3)
        swapped = np.stack([base.copy() for _ in range(3)])
        for seed in swapped:
            right, wrong = rng.choice(240, 8, replace=False), 240 + rng.choice(160, 8, replace=False)
            seed[right], seed[wrong] = False, True
        bn = np.stack([np.stack([base, base, s]) for s in swapped])
        scratch = np.stack([np.stack([np.arange(400) < 80, np.arange(400) < 120, np.arange(400) < 100])] * 3)
        targets[target] = {"runs": {"HPT": curve_runs(hpt, [0, 25, 50]), "HPT-BN": curve_runs(bn, [0, 25, 50]),
                                    "scratch": curve_runs(scratch, [0, 100, 200])}}  # fmt: skip
    rows = {name: found for name, _, found in findings.convergence_rows({"command": "", "targets": targets})}
    faster, over_scratch, hpt_base, bn_base = rows.values()
    assert faster is not None and faster.verdict == "holds" and faster.paired  # step 0 passes scratch's best (30%)
    assert faster.difference == pytest.approx(0.6 - 0.3)
    assert over_scratch.difference == pytest.approx(0.7 - 0.3) and over_scratch.verdict == "holds"
    assert hpt_base.difference == pytest.approx(0.1) and hpt_base.verdict == "holds" and hpt_base.wins == 6
    assert bn_base.difference == pytest.approx(0.0) and bn_base.verdict == "not shown" and bn_base.wins == 0


def test_a_spread_is_best_minus_worst_setting_on_the_same_resampled_images():
    """Robustness: scratch's spread over three settings 10 points, HPT's 2, in every seed: 8 points, and the
    images' term computed by resampling the same images for every setting (no seed variation here: the interval
    is the images' alone, and holds at 400 images)."""
    images = np.arange(400)

    def runs(accuracies: list[int]) -> dict[str, list[dict]]:
        return {str(a): curve_runs(np.stack([np.stack([images < 200, images < a])] * 3), [0, 100]) for a in accuracies}

    study = {"HPT": runs([240, 244, 248]), "scratch": runs([100, 120, 140])}
    e = findings.spread_evidence(study)
    assert e is not None and e.differences == pytest.approx((0.08,) * 3)
    assert 0 < e.image_variance < (0.05 / 1.96) ** 2
    assert findings.spread_evidence({**study, "HPT": {"x": [{"curve": []}]}}) is None  # no outcomes kept
