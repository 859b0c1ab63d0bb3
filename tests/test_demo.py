"""The README's demo table is `examples/demo.py --render` of the committed demo result
(`benchmarks/results/demo/results.json`, made by `make demo`), and the demo writes the result its table is rendered
from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


DEMO_BEGIN = "<!-- demo: begin (examples/demo.py --render benchmarks/results/demo/results.json) -->"
DEMO_END = "<!-- demo: end -->"


def demo_table(results: Path) -> str:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--render", str(results)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.slow  # a subprocess importing torch
def test_the_readme_demo_table_is_the_committed_demo_result():
    readme = (ROOT / "README.md").read_text()
    assert readme.count(DEMO_BEGIN) == readme.count(DEMO_END) == 1
    in_readme = readme.split(DEMO_BEGIN)[1].split(DEMO_END)[0].strip("\n")
    assert in_readme == demo_table(ROOT / "benchmarks" / "results" / "demo" / "results.json").strip("\n")


@pytest.mark.slow  # real pretraining and evaluation through the command line
def test_the_demo_writes_the_result_its_table_is_rendered_from(tmp_path):
    """`examples/demo.py` at a tiny size: real data, the real base, two real runs; its results.json holds the three
    rows and the paired comparisons, consistent with the eval.json files it read, and renders to the table."""
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--out", str(tmp_path), "--steps", "2", "--batch-size",
         "16", "--image-size", "16", "--unlabelled", "64", "--per-class", "3"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    record = json.loads((tmp_path / "results.json").read_text())
    assert [row["model"].split(":")[0].split(" ")[0] for row in record["rows"]] == ["base", "MoCo", "HPT"]
    hpt = json.loads((tmp_path / "hpt" / "eval.json").read_text())["knn"]["metrics"]
    assert record["rows"][2]["knn_top1_k20"] == hpt["knn_top1_k20"]
    assert record["rows"][0]["wall_s"] is None and record["rows"][2]["wall_s"] > 0
    images = record["test_images"]
    base = round(record["rows"][0]["knn_top1_k20"] * images)
    assert record["paired"]["base"]["difference"] == pytest.approx(record["rows"][2]["knn_top1_k20"] - base / images)
    table = demo_table(tmp_path / "results.json")
    assert "| HPT: MoCo v2 from the ImageNet base |" in table and "Paired on the same test images" in table
