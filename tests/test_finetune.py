"""Label fractions and fine-tuning with few labels."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from hpt.cli import main
from hpt.errors import HptError
from hpt.eval.finetune import select_labels

LABELS = [0] * 200 + [1] * 50 + [2] * 7  # unbalanced on purpose


@pytest.mark.parametrize(
    "spec,per_class",
    [
        ("1%", {0: 2, 1: 1, 2: 1}),
        ("10%", {0: 20, 1: 5, 2: 1}),
        ("5-shot", {0: 5, 1: 5, 2: 5}),
        ("all", {0: 200, 1: 50, 2: 7}),
    ],
)
def test_label_fractions_pick_the_right_number_per_class(spec, per_class):
    chosen = select_labels(LABELS, spec, seed=3)
    assert Counter(LABELS[i] for i in chosen) == per_class
    assert len(set(chosen)) == len(chosen)
    assert select_labels(LABELS, spec, seed=3) == chosen  # reproducible for a seed
    if spec != "all":
        assert select_labels(LABELS, spec, seed=4) != chosen


@pytest.mark.parametrize(
    "spec,message",
    [
        ("8-shot", "class 2 has only 7 images"),
        ("half", "expected P%"),
        ("10", "expected P%"),
        ("0-shot", "at least 1-shot"),
        ("0%", "above 0%"),
        ("150%", "at most 100%"),
    ],
)
def test_bad_label_specs_are_named(spec, message):
    with pytest.raises(HptError, match=message):
        select_labels(LABELS, spec)


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_finetune_with_few_labels_through_the_cli(digits, lite0_file, tmp_path):
    out = tmp_path / "eval.json"
    code = main(
        [
            "eval",
            str(lite0_file),
            "--backbone",
            "timm:tf_efficientnet_lite0",
            "--image-size",
            "32",
            "--train",
            str(digits["train"]),
            "--test",
            str(digits["test"]),
            "--protocol",
            "finetune",
            "--labels",
            "5-shot",
            "--finetune-steps",
            "20",
            "--workers",
            "0",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())["finetune"]
    assert result["settings"]["labelled_images"] == 50 and result["settings"]["head_lr_multiplier"] == 100
    # 5 labels per class, 20 steps from the ImageNet base: clearly above the 10% of chance on 10 digits.
    assert result["metrics"]["finetune_top1"] > 0.2
