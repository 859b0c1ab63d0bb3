"""DINO: its loss and centring against lightly's `DINOLoss` on the same tensors, the method's mechanics (crops,
teacher, frozen last layer, temperature warm-up), its head under `bn-only`, and a stopped run resumed bit for
bit. (The generic tests run it too: every backbone family, one process against two, loss falling, from the base.)"""

from __future__ import annotations

import pytest
import torch
from lightly.loss import DINOLoss

from hpt.backbones import batch_norms, create_backbone
from hpt.checkpoints.files import read_tensors
from hpt.config import DINOConfig, ModelConfig
from hpt.core.param_groups import param_groups
from hpt.losses.dino import dino_loss, teacher_targets, updated_centre
from hpt.methods.dino import DINO
from hpt.train.loop import pretrain
from hpt.transfer.bn_only import init_bn_only

SMALL = DINOConfig(out_dim=64, hidden_dim=32, bottleneck_dim=16, small_crops=2, freeze_last_layer_steps=1)


@pytest.mark.parametrize("batch,k,local,teacher_temperature", [(8, 64, 2, 0.04), (5, 4096, 6, 0.07), (16, 10, 0, 0.05)])
def test_loss_and_centre_match_lightly(batch, k, local, teacher_temperature):
    """Same logits, same centre: the same loss and the same next centre as lightly 1.6's DINOLoss (which follows
    DINO's code). Both compute in float32 and sum the same K x crops x batch products in another order: relative
    differences of a few 1e-7 per sum, well under 1e-5."""
    torch.manual_seed(k + local)
    teacher = [torch.randn(batch, k) * 3 for _ in range(2)]
    student = [torch.randn(batch, k) * 3 for _ in range(2 + local)]
    centre = torch.randn(1, k)
    reference = DINOLoss(output_dim=k, teacher_temp=teacher_temperature, student_temp=0.1, center_momentum=0.9)
    reference.center.copy_(centre.unsqueeze(0))
    expected = reference(teacher, student, teacher_temp=teacher_temperature)
    ours = dino_loss(student, teacher_targets(teacher, centre, teacher_temperature), 0.1)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(
        updated_centre(centre, torch.cat(teacher), 0.9), reference.center.squeeze(0), rtol=1e-5, atol=1e-6
    )


def test_the_loss_is_lowest_when_the_student_predicts_the_teacher():
    """Cross-entropy is minimal where the student's softmax equals the target: a student whose logits are the
    teacher's (as sharp) scores lower than one with the teacher's logits shuffled across the batch."""
    torch.manual_seed(0)
    teacher = [torch.randn(6, 32) for _ in range(2)]
    targets = teacher_targets(teacher, torch.zeros(1, 32), 0.1)
    matching = [teacher[1], teacher[0]]  # crop v's loss compares it with the other crop's target
    shuffled = [t[torch.randperm(6)] for t in matching]
    assert dino_loss(matching, targets, 0.1) < dino_loss(shuffled, targets, 0.1)


def test_the_teacher_sees_the_global_crops_and_the_student_every_crop_one_pass_per_size():
    torch.manual_seed(0)
    method = DINO(create_backbone("torchvision:resnet18"), SMALL, image_size=32, steps=10)
    seen: dict[str, list[tuple[int, ...]]] = {"student": [], "teacher": []}
    method.backbone.register_forward_hook(lambda m, i, o: seen["student"].append(tuple(i[0].shape)))
    method.teacher_backbone.register_forward_hook(lambda m, i, o: seen["teacher"].append(tuple(i[0].shape)))
    views = [torch.randn(4, 3, 32, 32) for _ in range(2)] + [torch.randn(4, 3, 14, 14) for _ in range(2)]
    method.on_step(0)
    method(views).loss.backward()
    assert seen == {"student": [(8, 3, 32, 32), (8, 3, 14, 14)], "teacher": [(8, 3, 32, 32)]}
    assert all(p.grad is None for p in [*method.teacher_backbone.parameters(), *method.teacher_head.parameters()])


def test_the_last_layer_is_frozen_first_and_its_rows_are_used_as_unit_vectors():
    torch.manual_seed(0)
    method = DINO(create_backbone("torchvision:resnet18"), SMALL, image_size=32, steps=10)
    views = [torch.randn(4, 3, 32, 32) for _ in range(2)] + [torch.randn(4, 3, 14, 14) for _ in range(2)]
    method.on_step(0)
    method(views).loss.backward()
    assert method.head.last_layer.grad is None  # frozen during the first step
    assert method.head.mlp.net[0].weight.grad is not None
    method.on_step(1)
    method(views).loss.backward()
    assert method.head.last_layer.grad is not None and method.head.last_layer.grad.abs().sum() > 0
    features = torch.randn(3, 512)
    with torch.no_grad():
        logits, unit = method.head(features)
        method.head.last_layer.mul_(7.0)  # rows scaled: the same unit vectors, the same logits
        again, _ = method.head(features)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(again, logits)
    assert logits.abs().max() <= 1 + 1e-6  # cosine similarities


def test_a_run_too_short_to_train_the_frozen_layer_says_so():
    """The default freeze (313 steps: the papers' first epoch at ImageNet scale) outlasts a 100-step run: its console
    says so for DINO's last layer and SwAV's prototypes, and nothing when the layer trains for part of the run."""
    from hpt.config import SwAVConfig
    from hpt.methods.swav import SwAV

    backbone, defaults = (
        create_backbone("torchvision:resnet18"),
        SMALL.model_copy(update={"freeze_last_layer_steps": 313}),
    )
    (note,) = DINO(backbone, defaults, image_size=32, steps=100).notes()
    assert note.startswith("DINO's last layer: frozen for the whole run (dino.freeze_last_layer_steps 313 >=")
    assert DINO(backbone, defaults, image_size=32, steps=314).notes() == []
    (note,) = SwAV(backbone, SwAVConfig(hidden_dim=8), image_size=32, steps=313).notes()
    assert (
        note.startswith("SwAV's prototypes: frozen for the whole run")
        and "set swav.freeze_prototypes_steps to about" in note
    )
    assert SwAV(backbone, SwAVConfig(hidden_dim=8), image_size=32, steps=314).notes() == []


def test_the_teacher_temperature_warms_up_linearly_then_holds():
    method = DINO(create_backbone("torchvision:resnet18"), SMALL, image_size=32, steps=100)  # warm-up: 30 steps
    temperatures = [method.teacher_temperature(step) for step in range(100)]
    assert temperatures[0] == 0.04 and temperatures[29] == 0.07 and set(temperatures[29:]) == {0.07}
    assert temperatures[15] == pytest.approx(0.04 + 0.03 * 15 / 29)
    assert DINO(create_backbone("torchvision:resnet18"), SMALL.model_copy(update={"teacher_temperature_warmup": 0.0}),
                32, 100).teacher_temperature(0) == 0.07  # fmt: skip


def test_the_views_are_two_global_and_n_local_crops():
    from PIL import Image

    from hpt.data.views import pretrain_view

    method = DINO(create_backbone("torchvision:resnet18"), SMALL.model_copy(update={"small_crops": 3}), 64, 10)
    views = method.views(
        lambda size=None, scale=None: pretrain_view("full", size or 64, (0.5,) * 3, (0.5,) * 3, scale or (0.2, 1.0))
    )
    assert [tuple(v.shape) for v in views(Image.new("RGB", (80, 80)))] == [(3, 64, 64)] * 2 + [(3, 27, 27)] * 3


def test_bn_only_trains_the_batch_norm_and_the_student_head_only(lite0_file):
    backbone, _ = init_bn_only(ModelConfig(base=str(lite0_file), backbone="timm:tf_efficientnet_lite0", init="bn-only"))
    method = DINO(backbone, SMALL, image_size=32, steps=10)
    in_optimizer = {id(p) for group in param_groups(method, 1e-4) for p in group["params"]}
    expected = {id(p) for _, norm in batch_norms(backbone) for p in (norm.weight, norm.bias)}
    assert in_optimizer == expected | {id(p) for p in method.head.parameters()}


def test_a_stopped_run_resumes_bit_for_bit(tiny_config, digits, stopped_and_resumed):
    """Stopped after step 3, inside the temperature's warm-up and after the last layer's freeze, and resumed: the
    student, teacher, centre and optimiser end as in a run never stopped (the step-dependent parts follow the
    step, not the process)."""
    settings = {f"dino.{key}": value for key, value in SMALL.model_dump().items()}
    settings |= {"dino.freeze_last_layer_steps": 2, "dino.teacher_temperature_warmup": 0.9}
    config = tiny_config(
        digits["pretrain"], method="dino", **settings, **{"train.steps": 6, "monitor.label_free_sample": 0}
    )
    whole, resumed = stopped_and_resumed(config)
    assert {"centre", "teacher_head.last_layer", "head.last_layer"} <= whole.keys() and whole.keys() == resumed.keys()
    assert whole["centre"].abs().sum() > 0
    different = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not different, different[:3]


def test_multi_crop_views_are_made_on_the_device_too(tiny_config, digits, tmp_path, recorded_views):
    """`views.on_device`: the loader crops 2 global and 2 local crops (two sizes) and the device augments them;
    DINO gets normalised float views of both sizes and trains on them."""
    seen = recorded_views(DINO)
    settings = {f"dino.{key}": value for key, value in SMALL.model_dump().items()}
    config = tiny_config(
        digits["pretrain"],
        method="dino",
        **settings,
        **{"train.steps": 2, "views.on_device": True, "monitor.label_free_sample": 0},
    )
    pretrain(config, tmp_path / "run")
    assert seen == [[(8, 3, 16, 16)] * 2 + [(8, 3, 8, 8)] * 2] * 2
    assert all(torch.isfinite(m).all() for m in read_tensors(tmp_path / "run" / "checkpoint.safetensors")[0].values())
