"""The real datasets that install from registries, written as image folders (`hpt.data.builtin`)."""

from __future__ import annotations

import json

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
    with pytest.raises(HptError, match="dataset 'cifar-10': expected fashion-mnist, mnist-5k, digits-8x8 or emoji"):
        builtin.write_splits("cifar-10", tmp_path, unlabelled=10, per_class=1)


def _emoji_package(folder, entries):
    """A package folder laid out as npm's emoji-datasource-google is (emoji.json, img/google/64/*.png), of small
    RGBA images: what `npm pack` would have unpacked, without the network."""
    images = folder / "package" / "img" / "google" / "64"
    images.mkdir(parents=True)
    for i, entry in enumerate(entries):
        pixels = np.zeros((64, 64, 4), dtype=np.uint8)
        pixels[16:48, 16:48] = (200, 10 * i, 50, 255)  # an opaque square on a transparent field
        pixels[0, 0] = (255, 255, 255, 0)  # a transparent pixel whose colour must not show
        Image.fromarray(pixels, mode="RGBA").save(images / entry["image"])
    (folder / "package" / "emoji.json").write_text(json.dumps(entries))


def test_emoji_are_read_by_category_with_transparency_on_black(tmp_path, monkeypatch):
    entries = [
        {"image": f"{i:04x}.png", "category": category, "sort_order": 10 - i, "has_img_google": True}
        for i, category in enumerate(["Flags", "Smileys & Emotion", "Component", "Food & Drink", "Flags"])
    ]
    entries[4]["has_img_google"] = False  # listed without a Google image: left out
    monkeypatch.setattr(builtin, "emoji_folder", lambda: tmp_path / "emoji")
    _emoji_package(tmp_path / "emoji", entries)
    images, labels = builtin.emoji()
    # in emoji.json's sort order (descending i here); Component (skin-tone swatches) and the imageless are left out
    assert [builtin.EMOJI_CLASSES[label] for label in labels] == ["food", "smileys", "flags"]
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    assert (images[:, 0, 0] == 0).all()  # transparent -> black, as hpt decodes PNGs with alpha
    assert images[0, 32, 32].tolist() == [200, 30, 50] and images[2, 32, 32].tolist() == [200, 0, 50]


def test_emoji_without_npm_say_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(builtin, "emoji_folder", lambda: tmp_path / "emoji")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    assert not builtin.emoji_available()
    with pytest.raises(HptError, match="emoji-datasource-google@16.0.0 is fetched from npm, and npm is not installed"):
        builtin.emoji()
