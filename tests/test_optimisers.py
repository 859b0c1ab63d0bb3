"""`optim.name` (sgd, adamw, lars), `optim.clip_grad` and `optim.weight_decay_end`: LARS's update against its
formula, clipping measured on real steps, the weight decay each real step used, each method's own rate per
optimiser, and every optimiser's state carried through a checkpoint bit for bit."""

from __future__ import annotations

import pytest
import torch

from hpt.checkpoints.files import read_tensors
from hpt.core.lars import LARS
from hpt.core.param_groups import param_groups
from hpt.errors import HptError
from hpt.train.loop import pretrain


def test_lars_scales_each_weight_step_by_its_trust_ratio_and_leaves_biases_plain():
    """Two steps by hand: d = g + wd w, scaled by eta |w| / |d|; b = m b + d; w -= lr b. The bias (1-D) takes
    momentum-SGD steps without decay or scaling; a zero weight takes a trust ratio of 1."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    zero = torch.nn.Parameter(torch.zeros(2, 2))
    model = torch.nn.ModuleDict({"layer": layer, "zero": torch.nn.ParameterDict({"w": zero})})
    lr, momentum, wd, eta = 0.5, 0.9, 0.1, 0.001
    optimiser = LARS(param_groups(model, wd), lr=lr, momentum=momentum, trust_coefficient=eta)
    w, b = layer.weight.detach().clone(), layer.bias.detach().clone()
    buffer_w, buffer_b = torch.zeros_like(w), torch.zeros_like(b)
    for _ in range(2):
        gw, gb, gz = torch.randn_like(w), torch.randn_like(b), torch.randn(2, 2)
        layer.weight.grad, layer.bias.grad, zero.grad = gw.clone(), gb.clone(), gz.clone()
        before_zero = zero.detach().clone()
        optimiser.step()
        d = gw + wd * w
        buffer_w = momentum * buffer_w + eta * w.norm() / d.norm() * d
        buffer_b = momentum * buffer_b + gb
        w, b = w - lr * buffer_w, b - lr * buffer_b
        # float32 sums in another order: a few ulps of values of order 1
        torch.testing.assert_close(layer.weight.detach(), w, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(layer.bias.detach(), b, rtol=1e-6, atol=1e-6)
        if not before_zero.any():  # its first step: |w| = 0, so the ratio is 1 and the step is lr * (g + 0)
            torch.testing.assert_close(zero.detach(), -lr * gz, rtol=1e-6, atol=1e-7)


def test_adamw_and_lars_need_a_learning_rate_and_are_named_beside_it(tiny_config, digits):
    unmeasured = {"optim.name": "adamw", "mocov2.adamw_lr": None}  # as for a method with no adamw rate measured
    with pytest.raises(HptError, match=r"optim.name adamw needs a learning rate: .* \(mocov2.adamw_lr is unset\); set"):
        tiny_config(digits["pretrain"], **unmeasured)
    lars = tiny_config(digits["pretrain"], **{"optim.name": "lars", "optim.lr": 0.3, "optim.clip_grad": 3})
    # the console's, the provenance's and the model card's words for the learning rate name both; SGD's stay as before
    assert lars.learning_rate_rule() == "optim.lr 0.3 x batch 8 / 256, lars, gradients clipped to norm 3"
    assert tiny_config(digits["pretrain"]).learning_rate_rule() == "mocov2.lr 0.03 x batch 8 / 256"
    # the method's own rate for the optimiser, where there is one, and where it came from
    own = tiny_config(digits["pretrain"], **{**unmeasured, "mocov2.adamw_lr": 0.002})
    assert own.scaled_learning_rate == pytest.approx(0.002 * 8 / 256)
    assert own.learning_rate_rule() == "mocov2.adamw_lr 0.002 x batch 8 / 256, adamw"


def test_the_weight_decay_follows_its_cosine_on_the_decayed_weights_only(tiny_config, digits, tmp_path):
    """Each real AdamW step's weight decay (DINO's ViT recipe), read from the optimiser as it steps: `weight_decay`
    at step 0, the cosine's values between, `weight_decay_end` at the last; the norms and biases never decayed.
    (The schedule sets each group's key, which every optimiser reads the same way.)"""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from hpt.core.schedule import cosine_schedule

    seen: list[list[float]] = []
    hook = register_optimizer_step_pre_hook(lambda opt, *_: seen.append([g["weight_decay"] for g in opt.param_groups]))
    try:
        config = tiny_config(digits["pretrain"], **{"train.steps": 5, "optim.name": "adamw", "optim.lr": 0.001,
            "optim.weight_decay": 0.04, "optim.weight_decay_end": 0.4, "monitor.label_free_sample": 0})  # fmt: skip
        pretrain(config, tmp_path / "run")
    finally:
        hook.remove()
    decayed, plain = zip(*seen, strict=True)
    assert decayed[0] == pytest.approx(0.04, abs=1e-12) and decayed[-1] == pytest.approx(0.4, abs=1e-12)
    assert set(plain) == {0.0}
    assert list(decayed) == pytest.approx(list(cosine_schedule(0.04, 0.4, 5, reach_end=True)), abs=1e-12)
    assert config.learning_rate_rule().endswith(", weight decay 0.04 to 0.4 on a cosine")


def _float_tensors(path) -> dict[str, torch.Tensor]:
    tensors = read_tensors(path)[0]
    return {k: v for k, v in tensors.items() if v.is_floating_point() and not k.startswith(("optimizer.", "rng."))}


def test_clipping_bounds_the_first_step_by_the_clip(tiny_config, digits, tmp_path):
    """One SimCLR step (no momentum encoder, no weight decay) from the same seeded start and batch, clipped at c1
    and at c2: both steps point along the same gradient, so the weights differ by lr * |c1 - c2| in norm. The
    gradient's norm at a random start is far above both (else neither is clipped and they do not differ)."""
    settings = {
        "method": "simclr",
        "train.steps": 1,
        "optim.lr": 32.0,  # x batch 8 / 256: a step of 1.0 x the clipped gradient
        "optim.weight_decay": 0.0,
        "monitor.label_free_sample": 0,
    }
    runs = {}
    for clip in (1e-3, 2e-3):
        runs[clip] = tmp_path / f"clip-{clip}"
        pretrain(tiny_config(digits["pretrain"], **settings, **{"optim.clip_grad": clip}), runs[clip])
    a, b = (_float_tensors(run / "checkpoint.safetensors") for run in runs.values())
    difference = sum(float((a[k].double() - b[k].double()).square().sum()) for k in a) ** 0.5
    # The rounding of w - step in float32: half an ulp of weights < 1 per element, ~1e-6 over 0.5 M elements,
    # 0.1% of the 1e-3 expected; 1% is far above that and far below what clipping twice or not at all gives.
    assert difference == pytest.approx(1e-3, rel=1e-2)


@pytest.mark.parametrize("name", ["sgd", "adamw", "lars"])
def test_each_optimiser_resumes_a_stopped_run_bit_for_bit(name, tiny_config, digits, stopped_and_resumed):
    """A run stopped after step 3 (as by a signal: its checkpoint written there) and resumed ends with the
    weights, momentum encoder, queue and optimiser state of a run never stopped: every optimiser's state is
    saved and restored whole (AdamW's moments and step count, LARS's and SGD's momentum buffers)."""
    config = tiny_config(digits["pretrain"], **{"train.steps": 5, "optim.name": name, "optim.lr": 0.03,
                                                "optim.clip_grad": 3.0, "monitor.label_free_sample": 0})  # fmt: skip
    whole, resumed = stopped_and_resumed(config)
    assert any(k.startswith("optimizer.") for k in whole) and whole.keys() == resumed.keys()
    different = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not different, different[:3]


def test_a_run_started_before_the_optimiser_settings_resumes_unless_they_are_now_set(tiny_config, digits, tmp_path):
    """An earlier hpt's config.yaml has no `optim.name` nor `optim.clip_grad`: their defaults do what it did,
    so `--resume` accepts it (here: a finished run, nothing left to do), and refuses one now asked otherwise."""
    import yaml

    from hpt.train.run_dir import check_run_dir

    config, run = tiny_config(digits["pretrain"], **{"train.steps": 2}), tmp_path / "run"
    pretrain(config, run)
    written = yaml.safe_load((run / "config.yaml").read_text())
    del written["optim"]["name"], written["optim"]["clip_grad"]
    (run / "config.yaml").write_text(yaml.safe_dump(written))
    assert check_run_dir(run, config, overwrite=False, resume=True)
    clipped = tiny_config(digits["pretrain"], **{"train.steps": 2, "optim.clip_grad": 3.0})
    with pytest.raises(HptError, match=r"optim.clip_grad: None then, 3.0 now"):
        check_run_dir(run, clipped, overwrite=False, resume=True)

    # a default the run does not read changed since (another method's setting, its own method's rate for another
    # optimiser): it resumes; its own rate for its optimiser changed: refused, the run would not be the same
    method = config.method
    written[method]["adamw_lr"] = written["dino"]["lr"] = 0.123
    (run / "config.yaml").write_text(yaml.safe_dump(written))
    assert check_run_dir(run, config, overwrite=False, resume=True)
    written[method]["lr"] = 0.123
    (run / "config.yaml").write_text(yaml.safe_dump(written))
    with pytest.raises(HptError, match=rf"{method}.lr: 0.123 then"):
        check_run_dir(run, config, overwrite=False, resume=True)
    written["optim"]["lr"] = 0.5  # with optim.lr set (then and now) the method's own rates are not read
    (run / "config.yaml").write_text(yaml.safe_dump(written))
    assert check_run_dir(run, tiny_config(digits["pretrain"], **{"train.steps": 2, "optim.lr": 0.5}), False, True)
