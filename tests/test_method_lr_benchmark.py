"""The learning-rate study's quick mode (benchmarks/method_lr.py): every method continues from the real Lite0 on
real digits at each learning rate, and the table names one chosen rate per method, picked on the validation
split, not the test split it reports (the accuracies are the full mode's business, committed under
benchmarks/results/method_lr)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_the_quick_learning_rate_study_writes_its_results_and_is_summarised_again(quick_benchmark):
    out = quick_benchmark("method_lr")
    results = json.loads((out / "results.json").read_text())
    runs = results["targets"]["mnist-5k"]["runs"]
    assert list(runs) == ["mocov2", "dino"]  # the quick mode's two (the study sets only optim.lr, whatever the method)
    base = runs["mocov2"]["0.01"][0]["curve"][0]
    base_validation = {label: v["base"] for label, v in runs["mocov2"]["0.01"][0]["validation"].items()}
    for method, by_lr in runs.items():
        assert list(by_lr) == ["0.01", "0.03"]
        for (run,) in by_lr.values():
            assert [c["step"] for c in run["curve"]] == [0, 2]
            assert run["curve"][0] == base  # every run starts from the same base, scored the same way
            assert {label: v["base"] for label, v in run["validation"].items()} == base_validation  # validation too
        summary = results["summary"][method]
        validation = {lr: (summary[lr]["linear_validation"]["mean"], summary[lr]["kNN_validation"]["mean"])
                      for lr in by_lr}  # fmt: skip
        picked = max(by_lr, key=validation.__getitem__)
        assert summary["chosen"] == picked  # on validation (a tie broken by kNN there), not on the test split
        others = [lr for lr in by_lr if lr != picked]
        assert summary["within_noise"][0] == picked and set(summary["lead"]) == set(others)
        for lr, lead in summary["lead"].items():  # lead: points on validation, mean over the runs
            assert lead["points"] == pytest.approx(100 * (validation[picked][0] - validation[lr][0]))
            (a, _), (b, _), n = validation[picked], validation[lr], results["targets"]["mnist-5k"]["validation_images"]
            assert n == 10  # a fifth of 5 images, at least one, in each of the 10 classes
            assert lead["se"] == pytest.approx(100 * ((a * (1 - a) + b * (1 - b)) / n) ** 0.5)  # binomial, one run
            assert (lr in summary["within_noise"]) == (lead["points"] <= lead["se"])
        for lr, (run,) in by_lr.items():  # kNN on validation against the base's, on the same 10 images
            change = summary[lr]["kNN_validation_from_base"]
            a, b = run["validation"]["kNN"]["last"], run["validation"]["kNN"]["base"]
            assert change["points"] == pytest.approx(100 * (a - b))
            assert change["se"] == pytest.approx(100 * ((a * (1 - a) + b * (1 - b)) / 10) ** 0.5)  # binomial, as lead's
            assert (lr in summary["knn_worse"]) == (change["points"] < -change["se"])
        # a default: within one SE of the best and kNN not worsened by over one SE; adamw/lars adopt the best of
        # those that leave the base better on validation
        assert summary["defaults"] == [lr for lr in summary["within_noise"] if lr not in summary["knn_worse"]]
        gains = [lr for lr in summary["defaults"] if summary[lr]["linear_validation_change"]["mean"] > 0]
        assert summary["adopted"] == (gains[0] if gains else None)
        assert summary["may_default"] == (summary["defaults"] or summary["within_noise"])  # the quick study's sgd
    table = (out / "results.md").read_text()
    assert "| dino |" in table and "| chosen |" in table
    summarised_again(out)  # on the same study: a second quick run would cost the suite 40 s


def summarised_again(out: Path) -> None:
    """`--from-results` applies the rule to a study's stored scores (the command they came from read back from its
    results.json): the same summary, the page's note by hand kept, one dated line saying so however often it runs;
    a folder without results.json is named, exit 2."""
    before = json.loads((out / "results.json").read_text())
    page = (out / "results.md").read_text().splitlines()
    date = next(i for i, line in enumerate(page) if line.startswith("Date: "))
    (out / "results.md").write_text("\n".join([*page[: date + 1], "A note by hand.", *page[date + 1 :]]) + "\n")
    script = Path(__file__).parents[1] / "benchmarks" / "method_lr.py"

    def from_results(folder: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, str(script), "--from-results", "--out", str(folder)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    for _ in range(2):
        result = from_results(out)
        assert result.returncode == 0, result.stderr[-2000:]
    after = json.loads((out / "results.json").read_text())
    assert after["summary"] == before["summary"] and after["targets"] == before["targets"]
    assert set(after["summarised"]) == {"date", "git"}
    text = (out / "results.md").read_text()
    assert "A note by hand." in text and text.count("Summary and choice recomputed") == 1
    table = [line for line in page if line.startswith("|")]
    assert [line for line in text.splitlines() if line.startswith("|")] == table  # the same summary rendered
    missing = from_results(out / "none")
    assert missing.returncode == 2
    assert f"{out / 'none' / 'results.json'} does not exist" in missing.stderr
    assert not (out / "none").exists()  # nothing written
    (out / "other").mkdir()
    (out / "other" / "results.json").write_text('{"command": "benchmarks/dino.py --steps 100"}')
    other = from_results(out / "other")
    assert other.returncode == 2 and "is not a method_lr.py study's results" in other.stderr
    assert sorted(p.name for p in (out / "other").iterdir()) == ["results.json"]  # nothing written beside it
