"""Splits proven disjoint (issue 50): labelled splits that share files by content are refused wherever they are
read, and the held-out validation fifth is checked by file identity from the outside, not with the splitting
code's own functions. On real MNIST digits and the real ImageNet EfficientNet-Lite0."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from hpt.checkpoints.provenance import FileProvenance
from hpt.checkpoints.sources import load_backbone
from hpt.config import MonitorConfig
from hpt.data.files import find_images
from hpt.data.overlap import shared_content
from hpt.eval.labelled import read_labelled
from hpt.eval.linear import WEIGHT_DECAYS, accuracy, fit_linear
from hpt.eval.monitor import VALIDATION_FRACTION, LabelledMonitor
from hpt.eval.protocols import EvalTask, linear
from hpt.eval.runner import selection_warnings

SIZE = 32


@pytest.fixture(scope="module")
def base(lite0_file):
    return load_backbone(str(lite0_file), "timm:tf_efficientnet_lite0", role="base")[0]


def test_splits_that_share_content_are_found_however_they_are_named(digits, tmp_path):
    """A copied folder, a list of the same files, a hard link and one file saved under another name are the same
    images; the fixture's real train and test splits (drawn disjoint) share none."""
    test = find_images(digits["test"])
    assert shared_content({"train": find_images(digits["train"]), "test": test}) == []
    copy = shutil.copytree(digits["test"], tmp_path / "copy")
    listed = tmp_path / "same.txt"
    listed.write_text("".join(f"{path}\t{path.parent.name}\n" for path in test.paths))
    linked = tmp_path / "linked" / "0"
    linked.mkdir(parents=True)
    one = sorted(Path(digits["test"]).glob("3/*.png"))[0]
    os.link(one, linked / "renamed.png")
    (linked.parent / "1").mkdir()
    shutil.copy(sorted(Path(digits["train"]).glob("1/*.png"))[0], linked.parent / "1" / "other.png")
    found = shared_content(
        {"test": test, "copy": find_images(copy), "list": find_images(listed), "link": find_images(linked.parent)}
    )
    counts = {(o.first, o.second): o.files for o in found}
    assert counts == {
        ("test", "copy"): 200,
        ("test", "list"): 200,
        ("test", "link"): 1,
        ("copy", "list"): 200,
        ("copy", "link"): 1,  # the linked file is in the copy and the list too
        ("list", "link"): 1,
    }
    link = next(o for o in found if o.second == "link")
    assert link.example == (str(one), str(linked / "renamed.png"))
    assert link.describe() == f"test and link share 1 file by content (e.g. '{one}' is '{linked / 'renamed.png'}')"


def test_hpt_eval_refuses_the_same_images_as_train_and_test_unless_allowed(digits, lite0_file, tmp_path, hpt_here):
    """`--train X --test X` scored 100.0% ± 0.0 without a word: now one line and exit 2, nothing written; with
    `--allow-overlap` it is scored, recorded in eval.json and said beside the score."""
    copy = shutil.copytree(digits["train"], tmp_path / "train-copy")
    args = ["eval", lite0_file, "--backbone", "timm:tf_efficientnet_lite0", "--image-size", SIZE]
    out = tmp_path / "eval.json"
    refused = hpt_here(*args, "--train", digits["train"], "--test", copy, "--out", out)
    assert refused.returncode == 2 and not out.exists()
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "train and test share 200 files by content" in lines[0] and "--allow-overlap" in lines[0]
    allowed = hpt_here(*args, "--train", digits["train"], "--test", copy, "--out", out, "--allow-overlap")
    assert allowed.returncode == 0, allowed.stderr
    assert "WARNING, allowed by --allow-overlap: train and test share 200 files" in allowed.stderr
    assert "splits share files, allowed by --allow-overlap" in allowed.stdout
    record = json.loads(out.read_text())["knn"]
    assert record["settings"]["overlaps"] == [
        "train and test share 200 files by content (e.g. "
        f"'{sorted(Path(digits['train']).rglob('*.png'))[0]}' is "
        f"'{sorted(Path(copy).rglob('*.png'))[0]}')"
    ]


def test_the_validation_fifth_is_held_out_stratified_by_file_identity(digits, base):
    """Which files the fit and the validation rows are, read back by matching each row's features to the training
    split's (every image's features differ), and each file's class read from its folder name: the fifth is a
    stratified 4 of each class's 20, fitted without, the two together the training split."""
    data = read_labelled(str(digits["train"]), {}).in_view(SIZE)
    task = EvalTask(base, data)
    everything = task.features("train").features
    fit, val, record = task.fit_and_validation()
    files = [Path(path) for path in data.images.train.paths]

    def which(rows: torch.Tensor) -> set[Path]:
        matches = (rows[:, None, :] == everything[None, :, :]).all(-1)  # rows x N
        assert (matches.sum(1) == 1).all()  # each row is exactly one training image
        return {files[int(i)] for i in matches.float().argmax(1)}

    fitted, held = which(fit.features), which(val.features)
    assert not fitted & held and fitted | held == set(files)
    per_class = {name: sum(1 for f in held if f.parent.name == name) for name in {f.parent.name for f in files}}
    assert set(per_class.values()) == {round(VALIDATION_FRACTION * 20)}
    assert record["val_images"] == len(held) == 40


def test_no_validation_score_has_seen_its_images(digits, base, tmp_path):
    """Training images with their labels shuffled (each class folder holds digits of every class): a classifier
    fitted without the validation images scores them near chance (10%), one fitted with them recognises them
    (kNN's nearest neighbour is the image itself, weighted e^(1/0.07); a probe on 1280 features memorises 160-200
    images). 40 validation images at 10%: 20 or more right has probability under 1e-9, so 50% is no tolerance
    tuned to a machine. The weight decay is then recomputed by hand on the fifth, from the files it holds: the
    recorded choice and validation scores are those, not the test split's."""
    shuffled = tmp_path / "shuffled"
    originals = sorted(Path(digits["train"]).rglob("*.png"))
    order = torch.randperm(len(originals), generator=torch.Generator().manual_seed(0))
    for i, j in enumerate(order.tolist()):
        folder = shuffled / originals[j].parent.name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(originals[i], folder / f"{i:03d}.png")
    config = MonitorConfig(train=str(shuffled), test=str(digits["test"]), protocol="both")
    scores = LabelledMonitor(config, SIZE, 64)(base, "cpu")
    assert scores["knn_val_top1_k20"] < 0.5 and scores["linear_val_top1"] < 0.5, scores

    data = read_labelled(str(shuffled), {"test": str(digits["test"])}).in_view(SIZE)
    task = EvalTask(base, data)
    fit, val, _ = task.fit_and_validation()
    result = linear(task)
    by_hand = {}
    for decay in WEIGHT_DECAYS:
        probe = fit_linear(fit.features, fit.targets, weight_decay=decay)
        by_hand[str(decay)] = accuracy(probe, val.features, val.targets)
    assert result.settings["validation"] == pytest.approx(by_hand, abs=1e-6)
    assert result.settings["weight_decay"] == max(WEIGHT_DECAYS, key=lambda d: (by_hand[str(d)], d))


def test_hpt_eval_warns_when_its_test_split_holds_a_copy_of_the_images_the_run_picked_on(digits, tmp_path):
    """The run picked on a held-out fifth of monitor.train; a `--test` that is a copy of that folder (another
    path, the same files) is those images, and the warning says so; the real test split is not."""
    record = json.loads((Path(__file__).parent / "data" / "provenance" / "0.7-backbone.json").read_text())
    record["config"]["monitor"]["train"] = str(digits["train"])
    provenance = FileProvenance.from_dict(record)
    copy = shutil.copytree(digits["train"], tmp_path / "copy")
    scored = read_labelled(str(digits["train"]), {"test": str(copy)}, allow_overlap=True)
    (warning,) = selection_warnings(provenance, scored)
    assert warning.startswith(f"warning: '{copy}' holds the images this run's exported step was picked on")
    assert selection_warnings(provenance, read_labelled(str(digits["train"]), {"test": str(digits["test"])})) == []
