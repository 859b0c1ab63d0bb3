"""Throughput: how close hpt's pretraining step runs to the speed of its model, and to a peer's.

In one run, on the same backbone, batch, resolution, precision and real images, SimCLR (two views, both with
gradients: the method whose cost is the plainest function of the backbone) measured three ways, in images per
second (a step of batch B counts B images):
  (a) limit:  the bare backbone, forward and backward on the 2B views of one batch already in memory, no data;
  (b) hpt:    `hpt pretrain --method simclr` as a user runs it (data loading, views, loss, optimiser, metrics;
              the monitor off), read from its metrics.jsonl, with the share of step time spent waiting for data;
              and again with `views.on_device` (the loader only decodes and crops; the rest of the views in
              batches on the training device);
  (c) lightly: the same method assembled from the `lightly` package (SimCLRTransform, SimCLRProjectionHead,
              NTXentLoss) with a torch DataLoader and the same optimiser, as its examples do.
It prints b/a (how much of the model's speed hpt keeps) and b/c (hpt against the peer). Each is timed after
`--warmup` steps; the figures are medians of `--repeats` windows.

    .venv/bin/python benchmarks/throughput.py --out benchmarks/results/throughput_cpu            # CPU figures
    .venv/bin/python benchmarks/throughput.py --quick --out /tmp/throughput                      # the suite's
    python benchmarks/throughput.py --backbone torchvision:resnet50 --image-size 224 --batch-size 256 \\
        --precision bf16-mixed --workers 12 --out benchmarks/results/throughput_gpu             # on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from provenance import git_revision, machine, today
from torch.utils.data import DataLoader, Dataset

from hpt.backbones import create_backbone
from hpt.config import load_config
from hpt.core.environment import current
from hpt.core.run_files import read_metrics
from hpt.data import builtin
from hpt.data.files import find_images
from hpt.train.loop import pretrain


def settings(args: argparse.Namespace) -> dict:
    return {
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "workers": args.workers,
        "steps": args.warmup + args.steps * args.repeats,
        "warmup": args.warmup,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def timed_windows(
    step: Callable[[], None], warmup: int, steps: int, repeats: int, batch: int, device: str
) -> list[float]:
    """Images per second of `repeats` windows of `steps` steps each, after `warmup` steps."""
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        rates.append(steps * batch / (time.perf_counter() - start))
    return rates


def autocast(precision: str, device: str):
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    return torch.autocast(device, dtype=dtype, enabled=dtype is not None)


def bare_backbone(args: argparse.Namespace, device: str) -> list[float]:
    """(a): forward and backward of the backbone alone on the 2B views of one batch."""
    backbone = create_backbone(args.backbone, pretrained=False).to(device).train()
    views = torch.randn(2 * args.batch_size, 3, args.image_size, args.image_size, device=device)
    if device == "cuda":
        backbone.to(memory_format=torch.channels_last)
        views = views.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with autocast(args.precision, device):
            features = backbone(views)
        features.float().sum().backward()

    return timed_windows(step, args.warmup, args.steps, args.repeats, args.batch_size, device)


def hpt_pretrain(args: argparse.Namespace, data: Path, out: Path, on_device: bool) -> tuple[list[float], list[float]]:
    """(b): a real `hpt pretrain` run; its metrics.jsonl logs images/s and the data-wait share every
    `args.steps` steps, and the windows after the warm-up are the figures."""
    warmup_windows = -(-args.warmup // args.steps)  # whole logging windows covering the warm-up
    total = args.steps * (warmup_windows + args.repeats)
    config = load_config(
        None,
        {
            "data.path": str(data),
            "data.image_size": args.image_size,
            "data.num_workers": args.workers,
            "model.backbone": args.backbone,
            "method": "simclr",
            "train.steps": total,
            "train.batch_size": args.batch_size,
            "train.precision": args.precision,
            "train.log_every": args.steps,
            "train.checkpoint_every": total,
            "monitor.label_free_sample": 0,
            "monitor.every": 0,
            "views.on_device": on_device,
        },
    )
    pretrain(config, out, overwrite=True)
    logged = read_metrics(out)[warmup_windows:]
    return [m["images_per_s"] for m in logged], [m["data_wait_share"] for m in logged]


class Files(Dataset):
    def __init__(self, paths: list[str], transform: Callable) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB"))


def lightly_simclr(args: argparse.Namespace, data: Path, device: str) -> list[float]:
    """(c): SimCLR from lightly's building blocks, as in its examples, on the same files."""
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    backbone = create_backbone(args.backbone, pretrained=False)
    width = backbone.num_features
    model = torch.nn.Sequential(backbone, SimCLRProjectionHead(width, width, 128)).to(device).train()
    if device == "cuda":
        model.to(memory_format=torch.channels_last)
    criterion = NTXentLoss(temperature=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03 * args.batch_size / 256, momentum=0.9, weight_decay=1e-4)
    transform = SimCLRTransform(input_size=args.image_size)
    loader = DataLoader(
        Files(find_images(str(data)).paths, transform),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device == "cuda",
    )
    batches = iter(())

    def step() -> None:
        nonlocal batches
        try:
            first, second = next(batches)
        except StopIteration:
            batches = iter(loader)
            first, second = next(batches)
        first, second = first.to(device, non_blocking=True), second.to(device, non_blocking=True)
        with autocast(args.precision, device):
            loss = criterion(model(first), model(second))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        float(loss.detach())  # as a training loop that logs its loss does

    return timed_windows(step, args.warmup, args.steps, args.repeats, args.batch_size, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that the figures are produced")
    parser.add_argument("--backbone", default="torchvision:resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows; the median is reported")
    parser.add_argument("--images", type=int, default=2000, help="real images (MNIST-5k) the runs read")
    args = parser.parse_args()
    if args.quick:
        args.backbone, args.image_size, args.batch_size, args.workers = "timm:test_resnet", 16, 8, 0
        args.warmup, args.steps, args.repeats, args.images = 1, 2, 2, 64
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        data = builtin.write_splits("mnist-5k", Path(scratch), unlabelled=args.images, per_class=0)["pretrain"]
        limit = bare_backbone(args, device)
        hpt_rates, waiting = hpt_pretrain(args, data, Path(scratch) / "run", on_device=False)
        on_device_rates, on_device_waiting = hpt_pretrain(args, data, Path(scratch) / "run", on_device=True)
        lightly_rates = lightly_simclr(args, data, device)
    figures = {
        "limit": statistics.median(limit),
        "hpt": statistics.median(hpt_rates),
        "hpt_views_on_device": statistics.median(on_device_rates),
        "lightly": statistics.median(lightly_rates),
    }
    result = {
        "settings": settings(args),
        "images_per_s": figures,
        "windows": {"limit": limit, "hpt": hpt_rates, "hpt_views_on_device": on_device_rates, "lightly": lightly_rates},
        "hpt_data_wait_share": statistics.median(waiting),
        "hpt_views_on_device_data_wait_share": statistics.median(on_device_waiting),
        "ratios": {"hpt/limit": figures["hpt"] / figures["limit"], "hpt/lightly": figures["hpt"] / figures["lightly"]},
        "machine": {"device": machine()},
        "environment": current(device).to_dict(),  # torch's version and threads among the rest
        "date": today(),
        "git": git_revision(),
    }
    (args.out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "throughput.md").write_text(table(result) + "\n")
    print(table(result))


def table(result: dict) -> str:
    s, f, r = result["settings"], result["images_per_s"], result["ratios"]
    return "\n".join(
        [
            f"SimCLR, {s['backbone']}, {s['image_size']} px, batch {s['batch_size']}, {s['precision']}, "
            f"{s['workers']} loader workers, on {result['machine']['device']} "
            f"({result['date'][:10]}, git {result['git']})",
            "",
            "| | images/s | |",
            "|---|---|---|",
            f"| (a) bare backbone forward+backward (the limit) | {f['limit']:.0f} | |",
            f"| (b) hpt pretrain, whole step with data | {f['hpt']:.0f} | b/a = {r['hpt/limit']:.2f}; "
            f"waiting for data {result['hpt_data_wait_share']:.0%} of the time |",
            f"| (b') hpt pretrain, views.on_device | {f['hpt_views_on_device']:.0f} | "
            f"{f['hpt_views_on_device'] / f['limit']:.2f} of the limit; waiting for data "
            f"{result['hpt_views_on_device_data_wait_share']:.0%} of the time |",
            f"| (c) lightly building blocks, same method | {f['lightly']:.0f} | b/c = {r['hpt/lightly']:.2f} |",
        ]
    )


if __name__ == "__main__":
    main()
