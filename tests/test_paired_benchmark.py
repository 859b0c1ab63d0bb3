"""The run-by-run comparison (benchmarks/paired.py) over the committed AdamW and SGD studies: it pairs the same
method, target and seed, and the committed page is what the committed runs give (nothing is run here)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
STUDIES = BENCHMARKS / "results" / "optimisers"


def test_the_committed_comparison_is_what_its_runs_give(tmp_path):
    committed = json.loads((STUDIES / "results.json").read_text())
    command = [*committed["command"].split()[1:], "--out", str(tmp_path)]  # as every study's, without its --out
    subprocess.run([sys.executable, str(BENCHMARKS / "paired.py"), *command], cwd=BENCHMARKS, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    again = json.loads((tmp_path / "results.json").read_text())
    assert (again["summary"], again["held_out"]) == (committed["summary"], committed["held_out"])
    assert committed["held_out"]["mocov2"]["pairs"] == 4  # seeds 1 and 2, on 2 targets: no rate was picked on them

    # the pairing, by hand: MoCo v2's AdamW runs against its SGD runs, same target, same seed
    adamw = json.loads((STUDIES / "adamw" / "results.json").read_text())["targets"]
    sgd = json.loads((STUDIES / "sgd-mocov2" / "results.json").read_text())["targets"]
    differences = [
        a["curve"][-1]["linear"] - s["curve"][-1]["linear"]
        for target in adamw
        for a, s in zip(adamw[target]["runs"]["mocov2"]["0.0025"], sgd[target]["runs"]["mocov2"]["0.03"], strict=True)
    ]
    linear = committed["summary"]["mocov2"]["linear"]
    assert committed["summary"]["mocov2"]["pairs"] == len(differences) == 6  # 2 targets x 3 seeds
    assert linear["mean"] == pytest.approx(statistics.fmean(differences))
    assert linear["standard_error"] == pytest.approx(statistics.stdev(differences) / math.sqrt(6))
    low, high = linear["interval"]
    assert low < linear["mean"] < high and linear["finding"] == (not low <= 0 <= high)
    assert linear["wins"] == sum(d > 0 for d in differences)
    assert "| mocov2 |" in (STUDIES / "results.md").read_text()


def test_a_study_of_several_rates_is_refused_by_name(tmp_path):
    """A side must hold one rate per method (else which runs pair is a guess): exit 2, naming the folder."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "paired.py"), "--a", "results/method_lr", "--b", "results/optimisers/adamw",
         "--out", str(tmp_path / "out")],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "results/method_lr has 3 learning rates of mocov2; expected one" in result.stderr
    assert not (tmp_path / "out").exists()
