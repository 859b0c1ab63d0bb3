"""The real datasets that install from registries, written as image folders (`hpt.data.builtin`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hpt.data import builtin
from hpt.errors import HptError


def test_digits_8x8_is_scikit_learns_digits_at_full_grey_range():
    images, labels = builtin.digits_8x8()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert sorted(np.unique(labels).tolist()) == list(range(10))


def test_digits_8x8_splits_are_disjoint_folders_of_8x8_pngs(tmp_path):
    folders = builtin.write_splits("digits-8x8", tmp_path, unlabelled=10_000, per_class=30)
    train = sorted(folders["train"].rglob("*.png"))
    test = sorted(folders["test"].rglob("*.png"))
    pretrain = sorted(folders["pretrain"].glob("*.png"))
    assert len(train) == len(test) == 300
    assert len(pretrain) == 1797 - 600  # all that the labelled splits left, though more were asked for
    assert sorted(p.name for p in folders["train"].iterdir()) == builtin.DIGIT_CLASSES
    assert all(len(list((folders["test"] / c).iterdir())) == 30 for c in builtin.DIGIT_CLASSES)
    assert Image.open(pretrain[0]).size == (8, 8) and Image.open(pretrain[0]).mode == "L"
    # the three splits are drawn from one pool without overlap: together they are every image exactly once
    pixels = sorted(np.asarray(Image.open(p)).tobytes() for p in train + test + pretrain)
    everything = sorted(image.tobytes() for image in builtin.digits_8x8()[0])
    assert pixels == everything


def test_an_unknown_dataset_is_named_in_the_error(tmp_path):
    with pytest.raises(HptError, match="dataset 'cifar-10': expected fashion-mnist, mnist-5k or digits-8x8"):
        builtin.write_splits("cifar-10", tmp_path, unlabelled=10, per_class=1)
