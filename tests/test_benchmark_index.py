"""benchmarks/README.md is the floor plan `benchmarks/index.py` writes from the scripts and the committed results:
a study added, a results folder committed or a docstring changed without rewriting it fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_the_committed_floor_plan_is_what_the_index_writes():
    spec = importlib.util.spec_from_file_location("benchmark_index", BENCHMARKS / "index.py")
    assert spec is not None and spec.loader is not None
    index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(index)
    written = index.page()
    assert (BENCHMARKS / "README.md").read_text() == written, "run: .venv/bin/python benchmarks/index.py"
    # every study script has its row, every committed results folder its link
    for script in BENCHMARKS.glob("*.py"):
        assert f"`{script.name}`" in written
    for results in (BENCHMARKS / "results").glob("*/results.json"):
        assert f"](results/{results.parent.name})" in written, results.parent.name
