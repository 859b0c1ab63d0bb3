"""How long `hpt pretrain` takes to refuse a common mistake: from process start to its one-line error.

Five bad inputs, each run as a user runs it (a new `python -m hpt` process, wall clock, the median of
`--repeats`): a `--data` folder that does not exist, an unknown config key, a value out of range, an `--out`
that holds another run's files, and a `--base` that is a text file. Each must end with exit code 2 and one
line. `--compare SRC` times the same five against another checkout's `src/` (e.g. a `git worktree` of an
older commit) and puts its figures beside these.

    .venv/bin/python benchmarks/fail_fast.py --out benchmarks/results/fail_fast --compare /tmp/hpt-0.6.0/src
    .venv/bin/python benchmarks/fail_fast.py --quick --out /tmp/fail_fast          # the suite's
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import header, markdown_header, write_results_json

from hpt.data import builtin

GOAL_S = 1.0


def cases(scratch: Path) -> dict[str, list[str]]:
    """The five bad inputs, over a real folder of 16 digits and an occupied run folder."""
    images, occupied, notes = scratch / "images", scratch / "occupied", scratch / "notes.txt"
    builtin.write_image_folder(builtin.mnist_5k()[0][:16], None, [], images)
    occupied.mkdir()
    (occupied / "metrics.jsonl").write_text("")
    notes.write_text("not a model\n")
    fresh = str(scratch / "run")
    return {
        "missing --data folder": ["--data", str(scratch / "no-such-folder"), "--out", fresh],
        "unknown config key": ["--data", str(images), "--out", fresh, "--set", "optim.nope=1"],
        "value out of range": ["--data", str(images), "--out", fresh, "--steps", "-5"],
        "occupied --out": ["--data", str(images), "--out", str(occupied)],
        "--base not a model": ["--data", str(images), "--out", fresh, "--base", str(notes)],
    }


def time_to_error(argv: list[str], src: Path | None) -> tuple[float, str]:
    """Seconds from process start to exit, and its stderr; the process must fail with one line, exit 2."""
    env = {**os.environ, "PYTHONPATH": str(src)} if src else dict(os.environ)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hpt", "pretrain", *argv], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 2 or len(done.stderr.strip().splitlines()) != 1:
        raise SystemExit(
            f"hpt pretrain {' '.join(argv)}: exit {done.returncode}, expected 2 and one line:\n{done.stderr}"
        )
    return seconds, done.stderr.strip()


def _revision(src: Path) -> str:
    """The git revision of the checkout `src` belongs to."""
    done = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout's src/ to time beside this one")
    parser.add_argument("--quick", action="store_true", help="one repeat: checks the script, measures nothing")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    results = {**header("fail_fast.py", args), "repeats": repeats, "goal_s": GOAL_S, "cases": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name, argv in cases(Path(scratch)).items():
            entry = {}
            for label, src in (("now", None), ("compared", args.compare)):
                if label == "compared" and src is None:
                    continue
                timings = [time_to_error(argv, src) for _ in range(repeats)]
                entry[label] = {"median_s": statistics.median(t for t, _ in timings), "error": timings[0][1]}
            results["cases"][name] = entry
    write_results_json(args.out, results)
    lines = markdown_header("Time to a one-line error", results)
    compared = f" | before: git {_revision(args.compare)} (s)" if args.compare else ""
    lines += [
        f"`hpt pretrain` with a bad input, from process start to exit 2 (median of {repeats}); goal: at most "
        f"{GOAL_S:g} s each.",
        "",
        f"| bad input | now (s){compared} | the error |",
        "|---|---|" + ("---|" if args.compare else "") + "---|",
    ]
    for name, entry in results["cases"].items():
        before = f" | {entry['compared']['median_s']:.2f}" if "compared" in entry else ""
        lines.append(f"| {name} | {entry['now']['median_s']:.2f}{before} | {entry['now']['error']} |")
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
