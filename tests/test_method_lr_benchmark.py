"""The learning-rate study's quick mode (benchmarks/method_lr.py): every method continues from the real Lite0 on
real digits at each learning rate, and the table names one chosen rate per method, picked on the validation
split, not the test split it reports (the accuracies are the full mode's business, committed under
benchmarks/results/method_lr)."""

from __future__ import annotations

import json

import pytest


def test_the_quick_learning_rate_study_writes_its_results(quick_benchmark):
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
        gain = summary[picked]["linear_validation_change"]["mean"]
        assert summary["adopted"] == (picked if gain > 0 else None)
        others = [lr for lr in by_lr if lr != picked]
        assert summary["within_noise"][0] == picked and set(summary["lead"]) == set(others)
        for lr, lead in summary["lead"].items():  # lead: points on validation, mean over the runs
            assert lead["points"] == pytest.approx(100 * (validation[picked][0] - validation[lr][0]))
            (a, _), (b, _), n = validation[picked], validation[lr], results["targets"]["mnist-5k"]["validation_images"]
            assert n == 10  # a fifth of 5 images, at least one, in each of the 10 classes
            assert lead["se"] == pytest.approx(100 * ((a * (1 - a) + b * (1 - b)) / n) ** 0.5)  # binomial, one run
            assert (lr in summary["within_noise"]) == (lead["points"] <= lead["se"])
    table = (out / "results.md").read_text()
    assert "| dino |" in table and "| chosen |" in table
