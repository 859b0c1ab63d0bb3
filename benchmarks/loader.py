"""What a loader worker spends on one image: CPU milliseconds to decode a real JPEG and make MoCo v2's two views at
224 px (and at 64, the size of hpt's CPU runs), on one thread, for each way hpt makes views.

- `cpu views`: the whole MoCo v2 policy per image on the CPU (PIL: crop, colour jitter, grayscale, blur, flip),
  hpt's default;
- `crops only`: `views.on_device`'s CPU part, the two random resized crops as uint8 (the rest runs in batches on
  the training device);
- each with the JPEG decoded at the smallest scale that still serves its crops (`Decoding.draft`: PIL's draft mode,
  1/2, 1/4 or 1/8 of each side), and at full size as before.

The photos are scikit-image's real ones, saved as JPEG (quality 90) at their own sizes: six the size of an
ImageNet photo (300 x 451 to 512 x 640) and two larger ones (the Hubble deep field, 872 x 1000; a retina,
1411 x 1411), the size a camera or a scanner gives. Images a second a loader core: 1000 / the milliseconds.

    .venv/bin/python benchmarks/loader.py --out benchmarks/results/loader
    .venv/bin/python benchmarks/loader.py --quick --out /tmp/loader      # the suite's: a few repeats
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from provenance import header, markdown_header, write_results_json
from skimage import data as photos

from hpt.data.decode import Decoding
from hpt.data.device_views import crop_view
from hpt.data.views import pretrain_view, two_views

SIZES = (224, 64)
PHOTOS = {
    "chelsea": photos.chelsea, "coffee": photos.coffee, "rocket": photos.rocket, "astronaut": photos.astronaut,
    "immunohistochemistry": photos.immunohistochemistry, "cat": photos.cat,
    "hubble_deep_field": photos.hubble_deep_field, "retina": photos.retina,
}  # fmt: skip
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
CROP_SCALE = (0.2, 1.0)


def per_image_ms(paths: list[Path], decoding: Decoding, views, repeats: int) -> float:
    """Median over `repeats` passes of the mean milliseconds to decode each file and make its two views."""
    torch.manual_seed(0)
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for path in paths:
            views(decoding(path))
        passes.append((time.perf_counter() - started) * 1000 / len(paths))
    return float(np.median(passes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="2 repeats: checks the script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
    torch.set_num_threads(1)  # one loader worker: one core
    ways = {
        f"{way} at {size} px": (views, Decoding(draft=Decoding.draft_for(size, CROP_SCALE[0])))
        for size in SIZES
        for way, views in (
            ("cpu views", two_views(pretrain_view("full", size, MEAN, STD, CROP_SCALE))),
            ("crops only", two_views(crop_view(size, CROP_SCALE))),
        )
    }
    results = {**header("loader.py", args), "photos": {}, "ms": {}}
    with tempfile.TemporaryDirectory() as scratch:
        groups: dict[str, list[Path]] = {"ImageNet-sized": [], "larger": []}
        for name, load in PHOTOS.items():
            path = Path(scratch) / f"{name}.jpg"
            Image.fromarray(load()[..., :3]).save(path, quality=90)
            with Image.open(path) as image:
                results["photos"][name] = list(image.size)
                groups["larger" if max(image.size) > 800 else "ImageNet-sized"].append(path)
        for group, paths in groups.items():
            for way, (views, drafted) in ways.items():
                for decode_name, decoding in (("full decode", Decoding()), ("draft decode", drafted)):
                    key = f"{group} | {way} | {decode_name}"
                    results["ms"][key] = round(per_image_ms(paths, decoding, views, args.repeats), 2)
                    print(key, results["ms"][key], flush=True)
    write_results_json(args.out, results)
    lines = markdown_header("A loader core's work on one image: decode a JPEG, make MoCo v2's two views", results)
    lines += [
        f"One thread; median of {args.repeats} passes; MoCo v2's policy, crops {CROP_SCALE[0]}-1 of the image.",
        "",
        "| photos | views | full decode: ms | images/s | draft decode: ms | images/s |",
        "|---|---|---|---|---|---|",
    ]
    for group in groups:
        for way in ways:
            full, draft = (results["ms"][f"{group} | {way} | {d}"] for d in ("full decode", "draft decode"))
            lines.append(f"| {group} | {way} | {full:.2f} | {1000 / full:.0f} | {draft:.2f} | {1000 / draft:.0f} |")
    sizes = ", ".join(f"{name} {w} x {h}" for name, (w, h) in results["photos"].items())
    lines += ["", f"Photos (width x height): {sizes}."]
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
