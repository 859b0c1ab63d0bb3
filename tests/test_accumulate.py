"""`train.accumulate`: a step's batch in micro-batches, their gradients summed before one update."""

from __future__ import annotations

import pytest
import torch

from hpt.checkpoints.files import read_provenance, read_tensors
from hpt.train.loop import pretrain

# Distillation by cosine regression with the student's BatchNorm statistics frozen: a loss that is a mean over
# images with nothing shared between them (the teacher is frozen, the head has no BatchNorm, no queue), so two
# micro-batches of 4 must give the very update of one batch of 8.
PER_IMAGE = {
    "method": "distill",
    "distill.loss": "cosine",
    "transfer.freeze_bn_statistics": True,
    "train.steps": 3,
    "train.checkpoint_every": 3,
    "monitor.label_free_sample": 0,
    "train.view_grid": 0,
    "train.loggers": [],
}


def _weights(run) -> dict[str, torch.Tensor]:
    tensors = read_tensors(run / "checkpoint.safetensors")[0]
    return {k: v for k, v in tensors.items() if k.startswith(("backbone.", "head.")) and v.is_floating_point()}


def test_two_micro_batches_update_as_one_batch_when_nothing_is_shared_between_images(tiny_config, digits, tmp_path):
    """The weights after 3 steps agree to float rounding: summing the halves' gradients instead of the whole's
    changes each by ~1e-7 of itself, so the runs may differ by at most 1e-3 of how far the weights moved. Dividing
    each micro-batch's loss by the parts is what this holds: without it the update doubles (checked: it fails)."""
    runs = {}
    for parts in (1, 2):
        runs[parts] = tmp_path / f"accumulate-{parts}"
        pretrain(tiny_config(digits["pretrain"], **PER_IMAGE, **{"train.accumulate": parts}), runs[parts])
    start = tmp_path / "start"
    pretrain(tiny_config(digits["pretrain"], **{**PER_IMAGE, "train.steps": 1, "optim.lr": 1e-30}), start)
    whole, split, before = _weights(runs[1]), _weights(runs[2]), _weights(start)
    moved = max(float((whole[k] - before[k]).abs().max()) for k in whole)
    apart = max(float((whole[k] - split[k]).abs().max()) for k in whole)
    assert moved > 1e-4 and apart <= 1e-3 * moved, (moved, apart)
    resolved = read_provenance(runs[2] / "backbone.safetensors")["resolved"]
    assert resolved["accumulate"] == 2 and resolved["batch_per_process"] == 8


def test_moco_enqueues_every_key_of_every_micro_batch(tiny_config, digits, tmp_path):
    config = tiny_config(
        digits["pretrain"], **{"train.steps": 2, "train.accumulate": 4, "monitor.label_free_sample": 0}
    )
    pretrain(config, tmp_path / "run")
    tensors = read_tensors(tmp_path / "run" / "checkpoint.safetensors")[0]
    assert int(tensors["queue.filled"]) == 16 and int(tensors["queue.ptr"]) == 16  # 2 steps x 4 parts x 2 images


@pytest.mark.parametrize("accumulate, said", [(3, "8 must split into 3 equal"), (8, "8 must split into 8 equal")])
def test_a_micro_batch_that_does_not_divide_or_is_under_two_is_one_line(digits, tmp_path, hpt_here, accumulate, said):
    run = tmp_path / "run"
    result = hpt_here(
        "pretrain", "--data", digits["pretrain"], "--out", run, "--batch-size", "8",
        "--set", f"train.accumulate={accumulate}",
    )  # fmt: skip
    assert result.returncode == 2 and said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not run.exists()
