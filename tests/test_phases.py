"""A run's four phases, each on its own (`train/plan.py`, `build.py`, `steps.py`, `finish.py`), and the
checkpoint record: what each phase hands the next, on real digits and a real (tiny) timm network."""

from __future__ import annotations

import math

import pytest
import torch
from rich.console import Console

from hpt.backbones import create_backbone
from hpt.checkpoints.files import read_provenance
from hpt.checkpoints.provenance import FileProvenance
from hpt.config import MoCoV2Config
from hpt.core.param_groups import param_groups
from hpt.core.run_files import BACKBONE, CHECKPOINT, CONFIG, read_metrics
from hpt.errors import HptError
from hpt.methods.mocov2 import MoCoV2
from hpt.train.build import build
from hpt.train.checkpoint import read_checkpoint, save_checkpoint
from hpt.train.finish import finish
from hpt.train.launch import make_fabric
from hpt.train.plan import plan_run
from hpt.train.steps import run_steps

TINY = "timm:test_resnet"


def _steps(tiny_config):
    """Four steps, logged every two, without the label-free monitor."""
    return lambda data, **overrides: tiny_config(
        data, **{"train.steps": 4, "monitor.label_free_sample": 0, **overrides}
    )


def test_the_plan_checks_its_inputs_and_writes_nothing(digits, tmp_path, tiny_config):
    _config = _steps(tiny_config)
    out = tmp_path / "run"
    plan = plan_run(_config(digits["pretrain"]), out, overwrite=False, resume=False)
    assert plan.strategy.name == "scratch" and not plan.freeze_statistics and not plan.continuing
    assert len(plan.images) == len(plan.found) == 256 and plan.held_out == 0 and plan.monitor is None
    assert len(plan.stats.mean) == 3 and not out.exists()  # statistics computed, nothing written

    with pytest.raises(HptError, match="has 256 images to train on, fewer than the batch size 512"):
        plan_run(_config(digits["pretrain"], **{"train.batch_size": 512}), out, False, False)
    with pytest.raises(HptError, match="--init full needs a --base"):
        plan_run(_config(digits["pretrain"], **{"model.init": "full"}), out, False, False)
    assert not out.exists()


def test_the_label_free_criteria_cost_two_feature_passes_only_when_asked_for(digits, tmp_path, tiny_config):
    """RankMe and alpha-ReQ on one pass by default; the pair criteria's two training views on request."""
    _config = _steps(tiny_config)
    sample = {"monitor.label_free_sample": 64}
    default = plan_run(_config(digits["pretrain"], **sample), tmp_path / "a", overwrite=False, resume=False)
    assert default.monitor is not None and default.monitor.label_free is not None
    assert default.monitor.label_free.pair is None
    asked = {**sample, "monitor.label_free_criteria": True}
    plan = plan_run(_config(digits["pretrain"], **asked), tmp_path / "b", overwrite=False, resume=False)
    assert plan.monitor is not None and plan.monitor.label_free is not None
    assert plan.monitor.label_free.pair is not None and len(plan.monitor.label_free.pair) == 2


def test_build_steps_and_finish_each_hand_on_what_the_next_needs(digits, tmp_path, tiny_config):
    _config = _steps(tiny_config)
    out = tmp_path / "run"
    config = _config(digits["pretrain"])
    plan = plan_run(config, out, overwrite=False, resume=False)
    fabric = make_fabric(config.train)
    console = Console(stderr=True, quiet=True)

    training = build(fabric, plan, console)
    assert (out / CONFIG).is_file() and training.start_step == 0 and training.resumed is None
    assert training.provenance.init == "scratch" and training.provenance.origin.source == "scratch"
    assert len(training.lr_at) == len(training.momentum_at) == config.train.steps

    ended = run_steps(fabric, config, training)
    assert ended.steps == 4 and math.isfinite(ended.last_loss) and ended.clock() > 0
    assert [line["step"] for line in read_metrics(out)] == [2, 4]
    assert not (out / BACKBONE).exists()  # exporting is the finish's

    wall_time = finish(fabric, plan, training, ended)
    exported = read_provenance(out / BACKBONE)
    assert exported["steps"] == 4 and exported["selected"] == {"step": 4, "by": "last"}
    assert exported["wall_time_s"] == pytest.approx(wall_time, abs=1e-3)  # stored rounded to the millisecond
    assert read_checkpoint(out).steps == 4


def test_a_checkpoint_restores_the_method_and_optimiser_exactly(tmp_path):
    def method_and_optimiser(seed: int):
        torch.manual_seed(seed)
        method = MoCoV2(create_backbone(TINY), MoCoV2Config(queue_size=16, dim=8, hidden_dim=16))
        return method, torch.optim.SGD(param_groups(method, 1e-4), lr=0.1, momentum=0.9)

    method, optimizer = method_and_optimiser(0)
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    loss, _ = method(views)
    loss.backward()
    optimizer.step()  # momentum buffers now exist
    save_checkpoint(tmp_path, method, optimizer, FileProvenance(None, steps=1, wall_time_s=0.5, adaptations={"x": 1}))
    rng_after_saving = torch.rand(3)

    checkpoint = read_checkpoint(tmp_path)
    assert checkpoint is not None and (tmp_path / CHECKPOINT).is_file()
    assert (checkpoint.steps, checkpoint.wall_time_s, checkpoint.adaptations) == (1, 0.5, {"x": 1})
    other, other_optimizer = method_and_optimiser(1)  # different weights, no momentum yet
    checkpoint.restore(other, other_optimizer)
    checkpoint.restore_rng()
    assert all(torch.equal(a, b) for a, b in zip(method.state_dict().values(), other.state_dict().values()))
    buffers = {i: s["momentum_buffer"] for i, s in optimizer.state_dict()["state"].items()}
    restored = {i: s["momentum_buffer"] for i, s in other_optimizer.state_dict()["state"].items()}
    assert buffers.keys() == restored.keys() and all(torch.equal(buffers[i], restored[i]) for i in buffers)
    assert torch.equal(torch.rand(3), rng_after_saving)  # the draws continue as they would have


def test_only_finite_weights_are_checkpointed(tmp_path):
    method = MoCoV2(create_backbone(TINY), MoCoV2Config(queue_size=16, dim=8, hidden_dim=16))
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    with torch.no_grad():
        next(method.parameters()).fill_(math.nan)
    with pytest.raises(HptError, match="the weights became non-finite at step 3; no checkpoint had been written"):
        save_checkpoint(tmp_path, method, optimizer, FileProvenance(None, steps=3))
    assert read_checkpoint(tmp_path) is None
