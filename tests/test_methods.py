"""SimCLR, BYOL, SwAV (and MoCo v2 in test_mocov2.py): losses against naive loops, method mechanics, and
every registered method through the same contract on both backbone families."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hpt.backbones import create_backbone
from hpt.backbones.adapters import adapted_layers
from hpt.config import BYOLConfig, ModelConfig, SwAVConfig, for_method, load_config
from hpt.core.ema import ema_update
from hpt.core.schedule import cosine_schedule
from hpt.data.stats import PixelStats
from hpt.losses.byol import byol_loss
from hpt.losses.nt_xent import nt_xent_loss
from hpt.losses.swav import sinkhorn, swapped_prediction_loss
from hpt.methods import METHODS, build_method
from hpt.methods.byol import BYOL
from hpt.methods.swav import SwAV
from hpt.transfer.lora import init_lora


def naive_nt_xent(z1, z2, temperature):
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2])]
    n2, n = len(z), len(z1)
    total = 0.0
    for i in range(n2):
        partner = (i + n) % n2
        numerator = math.exp(float(z[i] @ z[partner]) / temperature)
        denominator = sum(math.exp(float(z[i] @ z[j]) / temperature) for j in range(n2) if j != i)
        total += -math.log(numerator / denominator)
    return total / n2


@pytest.mark.parametrize("n,c,temperature", [(2, 4, 0.1), (5, 8, 0.5), (8, 3, 1.0)])
def test_nt_xent_matches_a_naive_loop(n, c, temperature):
    torch.manual_seed(n)
    z1, z2 = torch.randn(n, c, dtype=torch.float64), torch.randn(n, c, dtype=torch.float64)
    assert nt_xent_loss(z1, z2, temperature).item() == pytest.approx(naive_nt_xent(z1, z2, temperature), rel=1e-10)


@pytest.mark.parametrize("n,c", [(1, 3), (6, 16)])
def test_byol_loss_matches_the_normalised_squared_error(n, c):
    torch.manual_seed(c)
    p, z = torch.randn(n, c, dtype=torch.float64), torch.randn(n, c, dtype=torch.float64)
    naive = sum(float(((a / a.norm() - b / b.norm()) ** 2).sum()) for a, b in zip(p, z)) / n
    assert byol_loss(p, z).item() == pytest.approx(naive, rel=1e-10)


@pytest.mark.parametrize("crops,batch,k,temperature", [(2, 3, 5, 0.1), (4, 2, 7, 0.5)])
def test_swapped_prediction_matches_a_naive_loop(crops, batch, k, temperature):
    torch.manual_seed(crops)
    scores = [torch.randn(batch, k, dtype=torch.float64) for _ in range(crops)]
    codes = [torch.softmax(torch.randn(batch, k, dtype=torch.float64), dim=1) for _ in range(2)]
    total, pairs = 0.0, 0
    for i in range(2):
        for v in range(crops):
            if v == i:
                continue
            for b in range(batch):
                logits = [float(s) / temperature for s in scores[v][b]]
                log_norm = math.log(sum(math.exp(x) for x in logits))
                total += -sum(float(codes[i][b][j]) * (logits[j] - log_norm) for j in range(k)) / batch
            pairs += 1
    assert swapped_prediction_loss(scores, codes, temperature).item() == pytest.approx(total / pairs, rel=1e-10)


@pytest.mark.parametrize("batch,k,iterations", [(256, 3000, 3), (64, 8, 30), (32, 16, 30), (12, 30, 30)])
def test_sinkhorn_marginals(batch, k, iterations):
    """Rows (samples) sum to 1 exactly; columns (prototypes) to batch/K, within 1e-3 of the mass. SwAV's 3
    iterations get there at its own scale (batch 256, 3000 prototypes); small problems need more."""
    torch.manual_seed(k)
    scores = F.normalize(torch.randn(batch, 16), dim=1) @ F.normalize(torch.randn(k, 16), dim=1).T
    codes = sinkhorn(scores, epsilon=0.05, iterations=iterations)
    assert codes.shape == (batch, k) and (codes >= 0).all()
    assert torch.allclose(codes.sum(dim=1), torch.ones(batch), atol=1e-5)
    assert torch.allclose(codes.sum(dim=0) / batch, torch.full((k,), 1 / k), atol=1e-3)


def test_byol_target_follows_the_ema_and_gets_no_gradient():
    torch.manual_seed(0)
    method = BYOL(create_backbone("torchvision:resnet18"), BYOLConfig(hidden_dim=64, dim=16))
    loss = method([torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]).loss
    loss.backward()
    assert all(p.grad is None for p in method.target_backbone.parameters())
    assert all(p.grad is None for p in method.target_projector.parameters())
    with torch.no_grad():
        for p in method.projector.parameters():
            p.add_(1.0)
    before = [t.clone() for t in method.target_projector.parameters()]
    ema_update(method.momentum_pairs(), 0.996)
    for old, new, online in zip(before, method.target_projector.parameters(), method.projector.parameters()):
        assert torch.allclose(new, 0.996 * old + 0.004 * online, rtol=1e-6, atol=1e-8)


def test_byol_momentum_schedule_hits_its_end_points():
    schedule = cosine_schedule(0.996, 1.0, steps=100, reach_end=True)
    assert schedule[0] == 0.996 and schedule[-1] == 1.0 and all(a <= b for a, b in zip(schedule, schedule[1:]))
    assert BYOL(create_backbone("torchvision:resnet18"), BYOLConfig(hidden_dim=8, dim=4)).momentum == (0.996, 1.0)


def test_swav_freezes_then_trains_normalised_prototypes_and_fills_its_queue():
    torch.manual_seed(0)
    config = SwAVConfig(prototypes=10, hidden_dim=32, dim=8, small_crops=2, freeze_prototypes_steps=1, queue_size=6)
    method = SwAV(create_backbone("torchvision:resnet18"), config, image_size=32)
    assert method.small_size == round(32 * 96 / 224)
    views = [torch.randn(4, 3, 32, 32) for _ in range(2)] + [torch.randn(4, 3, 14, 14) for _ in range(2)]
    method.on_step(0)
    method(views).loss.backward()
    assert method.prototypes.weight.grad is None  # frozen during the first step
    assert torch.allclose(method.prototypes.weight.norm(dim=1), torch.ones(10))
    assert int(method.queued) == 4 and torch.count_nonzero(method.queue[:, 4:]) == 0
    method.on_step(1)
    method(views).loss.backward()
    assert method.prototypes.weight.grad is not None and method.prototypes.weight.grad.abs().sum() > 0
    assert int(method.queued) == 8 and torch.count_nonzero(method.queue) == method.queue.numel()


def test_swav_views_are_two_large_and_n_small_crops():
    from PIL import Image

    from hpt.data.views import pretrain_view

    method = SwAV(create_backbone("torchvision:resnet18"), SwAVConfig(small_crops=3, hidden_dim=8), image_size=64)
    views = method.views(
        lambda size=None, scale=None: pretrain_view("full", size or 64, (0.5,) * 3, (0.5,) * 3, scale or (0.2, 1.0))
    )
    shapes = [tuple(v.shape) for v in views(Image.new("RGB", (80, 80)))]
    assert shapes == [(3, 64, 64)] * 2 + [(3, 27, 27)] * 3


@pytest.mark.parametrize("backbone", ["torchvision:resnet18", "timm:tf_efficientnet_lite0", "lora"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_every_backbone_family(name, backbone, lite0_file):
    """One step on each registry entry: finite loss, gradients reach the backbone, nothing else needed. `lora`:
    the ImageNet Lite0 with peft's adapters (`--init lora`): they get gradients, the frozen base weights none, and
    a momentum or teacher copy of the backbone (MoCo, BYOL, DINO) carries its own adapters."""
    torch.manual_seed(0)
    config = load_config(
        overrides=for_method(
            {
                "method": name,
                "data.image_size": 32,
                "mocov2.queue_size": 16,
                "swav.prototypes": 16,
                "swav.small_crops": 2,
                "swav.hidden_dim": 64,
                "swav.freeze_prototypes_steps": 0,
                "byol.hidden_dim": 64,
                "simclr.hidden_dim": 64,
                "mocov2.hidden_dim": 64,
                "dino.out_dim": 64,
                "dino.hidden_dim": 64,
                "dino.small_crops": 2,
                "dino.freeze_last_layer_steps": 0,
                "distill.teacher": str(lite0_file),
                "distill.teacher_backbone": "timm:tf_efficientnet_lite0",
                "distill.queue_size": 16,
            },
            name,
        )
    )
    if backbone == "lora":
        adapted, _ = init_lora(ModelConfig(base=str(lite0_file), backbone="timm:tf_efficientnet_lite0", init="lora"))
        method = build_method(name, adapted, config, PixelStats((0.5,) * 3, (0.5,) * 3))
    else:
        method = build_method(name, create_backbone(backbone), config, PixelStats((0.5,) * 3, (0.5,) * 3))
    recipe = method.views(lambda size=None, scale=None: lambda image: torch.randn(3, size or 32, size or 32))
    views = [torch.stack(crops) for crops in zip(*(recipe(None) for _ in range(4)))]  # the method's own views
    loss, embeddings = method(views)
    loss.backward()
    assert torch.isfinite(loss)
    assert embeddings.shape[0] == 4 and embeddings.ndim == 2 and not embeddings.requires_grad
    assert all(p.grad is not None for p in method.backbone.parameters() if p.requires_grad)
    if backbone == "lora":
        adapters = [p for n, p in method.backbone.named_parameters() if ".lora_" in n]
        assert adapters and all(p.grad is not None for p in adapters)
        assert all(p.grad is None for n, p in method.backbone.named_parameters() if ".base_layer." in n)
        for copy in ("momentum_backbone", "target_backbone", "teacher_backbone"):  # MoCo's, BYOL's, DINO's
            if hasattr(method, copy):
                momentum = getattr(method, copy)
                assert adapted_layers(momentum.model) and not any(p.requires_grad for p in momentum.parameters())
