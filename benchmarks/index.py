"""benchmarks/README.md, the floor plan of this folder: each study script with the question it answers, its run time
as its docstring states it, the results folders it made and when each was last run; then the shared modules.
Read from the scripts' docstrings and each results file's `command` and `date`, so it cannot drift from them
(`tests/test_benchmark_index.py` fails when the committed page is not what this writes).

    .venv/bin/python benchmarks/index.py          # rewrites benchmarks/README.md
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHARED = {
    "evidence.py": "a finding's mean paired difference over targets and seeds, with its 95% interval",
    "findings.py": "the README's findings tables, rendered from the committed studies (`--write`)",
    "provenance.py": "the command, date, git revision, machine and environment every results file starts with",
    "study.py": "the real targets as image folders, one scored pretraining run, seeds and common flags",
    "index.py": "this page",
}
"""Modules the studies import or that render from them, rather than studies of their own."""
RUN_TIME = re.compile(r"~\s*\d+(?:[.,]\d+)?(?:\s*-\s*\d+)?\s*(?:s|min|h)\b")


def question(script: Path) -> str:
    """The docstring's first paragraph, as one line."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def run_time(script: Path) -> str:
    """The run time the docstring states (`~60 min`) on the line of a command that writes into `results/` (the
    committed study, not its quick mode), else the first it states, else a dash."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    timed = [line for line in doc.splitlines() if RUN_TIME.search(line)]
    committed = [line for line in timed if "benchmarks/results" in line]
    full = [line for line in timed if "--quick" not in line]
    for lines, note in ((committed, ""), (full, ""), (timed, " (its --quick mode)")):
        if lines:
            return str(RUN_TIME.search(lines[0]).group(0)).replace(" ", "") + note  # type: ignore[union-attr]
    return "-"


def results() -> dict[str, list[tuple[str, str]]]:
    """script name -> [(results path relative to benchmarks/, date)], from every committed results file."""
    made: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(RESULTS.glob("**/*.json")):
        if path.name not in ("results.json", "throughput.json") and path.parent != RESULTS:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        command = record.get("command", "") if isinstance(record, dict) else ""
        script = command.split()[0].split("/")[-1] if command else ""
        if script:
            where = path.parent if path.parent != RESULTS else path.with_suffix("")
            made.setdefault(script, []).append((str(where.relative_to(HERE)), str(record.get("date", "-"))[:10]))
    return made


def page() -> str:
    made = results()
    lines = [
        "# Benchmarks",
        "",
        "Each study answers one question with real data, real weights and real steps; its results folder keeps the",
        "command that made it, the date, the git revision, the machine and the environment (`provenance.py`).",
        "Written by `benchmarks/index.py` from the scripts' docstrings and the results files: do not edit by hand.",
        "",
        "| script | the question | run time (as stated) | results (last run) |",
        "|---|---|---|---|",
    ]
    for script in sorted(HERE.glob("*.py")):
        if script.name in SHARED:
            continue
        folders = made.get(script.name, [])
        listed = "<br>".join(f"[{where}]({where}) ({date})" for where, date in folders) or "none committed"
        lines.append(f"| `{script.name}` | {question(script)} | {run_time(script)} | {listed} |")
    other = sorted(set(made) - {p.name for p in HERE.glob("*.py")})
    if other:
        lines += ["", "Results made by scripts elsewhere: " + "; ".join(
            f"`{name}`: " + ", ".join(f"[{w}]({w})" for w, _ in made[name]) for name in other
        ) + "."]  # fmt: skip
    lines += ["", "Shared modules (imported by the studies, not studies themselves):", ""]
    lines += [f"- `{name}`: {what}" for name, what in SHARED.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    (HERE / "README.md").write_text(page())
    print(f"wrote {HERE / 'README.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
