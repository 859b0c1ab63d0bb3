"""The speed settings change how a step is computed, not what a run is: bf16 autocast with channels-last, and
torch.compile, train the same tiny real run to nearly the same losses and export the same files. At 32 px: at
16 px this net's last stage works on 1 x 1 maps and bf16 autocast on the CPU gave it non-finite weight gradients
(the health check stopped that run with its one line), while fp32 was fine."""

from __future__ import annotations

import pytest

from hpt.checkpoints.files import read_tensors
from hpt.config import load_config
from hpt.core.run_files import read_metrics
from hpt.train.loop import pretrain


def _run(digits, out, **settings):
    config = load_config(
        None,
        {
            "data.path": str(digits["pretrain"]),
            "data.image_size": 32,
            "data.num_workers": 0,
            "model.backbone": "timm:test_resnet",
            "train.steps": 3,
            "train.batch_size": 8,
            "train.log_every": 1,
            "mocov2.queue_size": 32,
            "monitor.label_free_sample": 0,
            "train.accelerator": "cpu",
            **settings,
        },
    )
    pretrain(config, out)
    exported = read_tensors(out / "backbone.safetensors")[0]
    return [m["loss"] for m in read_metrics(out)], exported


@pytest.fixture(scope="module")
def plain(digits, tmp_path_factory):
    return _run(digits, tmp_path_factory.mktemp("plain") / "run")


def test_bf16_with_channels_last_trains_the_same_run(digits, tmp_path, plain):
    losses, exported = _run(digits, tmp_path / "run", **{"train.precision": "bf16-mixed", "train.channels_last": True})
    # bf16 keeps 8 bits of mantissa (2^-8 = 0.4% per rounding); over a forward of a dozen layers and 3 steps the
    # loss drifts ~1%: 5% bounds that, while a run that trains something else differs from the first step on
    assert losses == pytest.approx(plain[0], rel=0.05)
    assert losses != plain[0]  # autocast was on
    assert exported.keys() == plain[1].keys()
    assert all(exported[k].dtype == plain[1][k].dtype and exported[k].shape == plain[1][k].shape for k in exported)


def test_compile_trains_the_same_run_and_keeps_the_file_layout(digits, tmp_path, plain):
    losses, exported = _run(digits, tmp_path / "run", **{"train.compile": True})
    # compiled kernels fuse and reorder float32 sums (~1e-6 relative a step, carried over 3 steps); a wrong graph
    # (a dropped layer, a missed BatchNorm update) moves the loss by whole percents
    assert losses == pytest.approx(plain[0], rel=1e-3)
    assert exported.keys() == plain[1].keys()  # compiled in place: no `_orig_mod.` in the keys


def test_precision_auto_is_bf16_only_on_a_gpu_that_has_it():
    from hpt.train.launch import auto_precision, concrete_settings

    assert auto_precision(cuda=True, bf16=True) == "bf16-mixed"
    assert auto_precision(cuda=True, bf16=False) == "32-true"  # pre-Ampere: float16 needs loss scaling; not by default
    assert auto_precision(cuda=False, bf16=False) == "32-true"
    cpu = load_config(None, {"train.accelerator": "cpu"})
    assert cpu.train.precision == "auto" and concrete_settings(cpu).train.precision == "32-true"
    chosen = load_config(None, {"train.precision": "16-mixed"})
    assert concrete_settings(chosen).train.precision == "16-mixed"  # what the user says is kept
