"""The robustness study's quick mode (benchmarks/robustness.py): HPT and scratch under two augmentation policies
and each data fraction, two seeds each, on real digits from the real base, with results, table and plot of the
right shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_quick_robustness_study_writes_its_results(quick_benchmark):
    out = quick_benchmark("robustness")
    result = json.loads((out / "results.json").read_text())["targets"]["mnist-5k"]
    for name in ("scratch", "HPT"):
        assert list(result["policies"][name]) == ["full", "crop-only"]  # the quick mode's (the full: no-color too)
        assert list(result["fractions"][name]) == ["0.10", "0.30", "1.00"]
        assert result["fractions"][name]["1.00"] == result["policies"][name]["full"]  # one run a seed, not two
        for runs in (*result["policies"][name].values(), *result["fractions"][name].values()):
            assert len(runs) == 2 and all([c["step"] for c in run["curve"]] == [0, 2] for run in runs)
        linear = result["summary"][name]["linear"]["policies"]
        finals = [[run["curve"][-1]["linear"] for run in result["policies"][name][p]] for p in linear["last"]]
        spreads = [max(seed) - min(seed) for seed in zip(*finals)]
        assert linear["spread"]["mean"] == sum(spreads) / 2  # per seed, then averaged
    lists = out / "lists" / "mnist-5k"
    assert len((lists / "0.10.txt").read_text().splitlines()) == 20  # 10% of 200
    assert set((lists / "0.10.txt").read_text().splitlines()) <= set((lists / "0.30.txt").read_text().splitlines())
    base = result["summary"]["HPT"]["linear"]["start"]["mean"]
    assert base == result["policies"]["HPT"]["full"][0]["curve"][0]["linear"]  # HPT's step 0: the base as it is
    assert (out / "robustness_mnist-5k.png").read_bytes()[:4] == b"\x89PNG"
    assert "| HPT |" in (out / "results.md").read_text()


def test_a_share_of_the_images_outside_0_1_is_refused_by_name(tmp_path):
    """--fractions 1.5 would silently run on all the images: exit 2 before anything runs, naming the value."""
    script = Path(__file__).parents[1] / "benchmarks" / "robustness.py"
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(script), "--fractions", "0.3", "1.5", "1.0", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr[-500:]
    assert "argument --fractions: 1.5 is not a share of the images: expected a number in (0, 1]" in result.stderr
    assert not out.exists()
