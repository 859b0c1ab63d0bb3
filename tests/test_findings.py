"""The README's tables of findings are the ones `benchmarks/findings.py` renders from the committed results of the
convergence, robustness, label-free, distillation and DINO studies: a number edited by hand, or results re-run without
re-rendering the tables, fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
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
    findings, label_free, distill, dino = (table.splitlines()[2:] for table in rendered.strip("\n").split("\n\n"))
    assert len(findings) == 6  # four convergence findings, two robustness findings
    assert len(label_free) == 2  # the pick, the verdict on the last step
    assert len(distill) == 6  # against the base, HPT and the teacher, at each of two teacher sizes
    assert len(dino) == 2  # against the base, against HPT
    rows = findings + label_free + distill + dino
    assert all(re.search(r"\*\*(holds|holds partly|does not hold)\*\* \(\d+/\d+\) \|$", row) for row in rows)
