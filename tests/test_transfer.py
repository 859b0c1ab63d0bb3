"""Initialisation strategies on the real ImageNet base: bn-only, weight scaling, filter selection."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from hpt.backbones import batch_norms, create_backbone
from hpt.checkpoints.sources import load_backbone
from hpt.config import MoCoV2Config, ModelConfig, TransferConfig, load_config
from hpt.core.param_groups import param_groups
from hpt.errors import HptError
from hpt.methods.mocov2 import MoCoV2
from hpt.train.loop import pretrain
from hpt.transfer import check_strategy
from hpt.transfer.bn_only import init_bn_only
from hpt.transfer.filter_selection import measure_responses, select_filters
from hpt.transfer.layers import fresh_modules, weighted_layers
from hpt.transfer.partial import blocks, init_partial
from hpt.transfer.weight_scaling import scale_weights

LITE0 = "timm:tf_efficientnet_lite0"


def _bn_keys(backbone) -> set[str]:
    return {
        f"{name}.{leaf}"
        for name, _ in batch_norms(backbone.model)
        for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }


def _from_lite0(digits, lite0_file, steps: int, **settings: object):
    """A short real run's config from the ImageNet Lite0 on the digits, at a learning rate high enough that every
    tensor that trains moves visibly in a few steps."""
    return load_config(
        overrides={
            "data.path": str(digits["pretrain"]),
            "data.image_size": 32,
            "data.num_workers": 0,
            "model.base": str(lite0_file),
            "model.backbone": LITE0,
            "train.steps": steps,
            "train.batch_size": 16,
            "mocov2.queue_size": 64,
            "optim.lr": 3.0,
            **settings,
        }
    )


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_bn_only_trains_batch_norm_alone(digits, lite0_file, tmp_path):
    # HPT-BN as published: the statistics train and are re-estimated on the target
    settings = {"model.init": "bn-only", "transfer.freeze_bn_statistics": False}
    pretrain(_from_lite0(digits, lite0_file, 4, **settings), tmp_path / "run")
    base, _ = load_backbone(str(lite0_file), LITE0)
    before = base.native_state_dict()
    after = load_file(str(tmp_path / "run" / "backbone.safetensors"))
    bn_keys = _bn_keys(base)
    assert bn_keys and set(after) == set(before)
    for key in before:
        if key not in bn_keys:
            assert torch.equal(after[key], before[key]), key  # bitwise: frozen
    affine = [k for k in bn_keys if k.endswith((".weight", ".bias"))]
    changed = [k for k in affine if not torch.equal(after[k], before[k])]
    assert len(changed) >= 0.9 * len(affine)  # (nearly) every BN affine tensor moved
    assert not torch.equal(after["bn2.running_mean"], before["bn2.running_mean"])  # re-estimated on the target


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
@pytest.mark.parametrize("init,frozen", [("full", None), ("full", False), ("bn-only", None)])
def test_a_run_from_a_base_keeps_its_batch_norm_statistics_unless_told(init, frozen, digits, lite0_file, tmp_path):
    config = load_config(
        overrides={
            "data.path": str(digits["pretrain"]),
            "data.image_size": 32,
            "data.num_workers": 0,
            "model.init": init,
            "model.base": str(lite0_file),
            "model.backbone": LITE0,
            "transfer.freeze_bn_statistics": frozen,
            "train.steps": 2,
            "train.batch_size": 16,
            "mocov2.queue_size": 64,
            "monitor.export": "last",
        }
    )
    pretrain(config, tmp_path / "run")
    before = load_backbone(str(lite0_file), LITE0)[0].native_state_dict()
    after = load_file(str(tmp_path / "run" / "backbone.safetensors"))
    statistics = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert len(statistics) > 50
    kept = [k for k in statistics if torch.equal(after[k], before[k])]
    assert len(kept) == (len(statistics) if frozen is None else 0)  # default: all bitwise kept; off: all moved
    assert not torch.equal(after["bn2.weight"], before["bn2.weight"])  # the affine parameters train either way


def test_bn_only_optimiser_holds_only_batch_norm_and_head(lite0_file):
    backbone, _ = init_bn_only(ModelConfig(base=str(lite0_file), backbone=LITE0, init="bn-only"))
    method = MoCoV2(backbone, MoCoV2Config(queue_size=8))
    in_optimizer = {id(p) for group in param_groups(method, 1e-4) for p in group["params"]}
    expected = {id(norm.weight) for _, norm in batch_norms(backbone)} | {
        id(norm.bias) for _, norm in batch_norms(backbone)
    }
    expected |= {id(p) for p in method.head.parameters()}
    assert in_optimizer == expected


@pytest.mark.parametrize("factor", [0.5, 1.0, 3.0])
def test_weight_scaling_sets_each_layer_to_factor_times_its_init_std(lite0_file, factor):
    backbone, _ = load_backbone(str(lite0_file), LITE0)
    report = scale_weights(backbone, factor, seed=0)
    fresh = fresh_modules(backbone, seed=0)
    layers = weighted_layers(backbone.model)
    assert report["layers"] == len(layers) == 49 and report["function_changed"] == []
    for layer in layers:
        expected = factor * fresh[layer.name].weight.detach().std()
        # one float32 multiplication per weight, then two std's over >= 432 values: ~1e-6 relative; 100x that
        assert float(layer.module.weight.detach().std()) == pytest.approx(float(expected), rel=1e-4), layer.name


def test_weight_scaling_keeps_the_eval_function(lite0_file):
    """conv -> BN in eval mode computes the same before and after: a learning-rate change, not a new function."""
    backbone, _ = load_backbone(str(lite0_file), LITE0)
    backbone.eval()
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    stem_outputs = []
    backbone.model.bn1.register_forward_hook(lambda m, i, o: stem_outputs.append(o))
    with torch.no_grad():
        before = backbone(images)
        scale_weights(backbone, 3.0)
        after = backbone(images)
    # conv(s w) then BN with s-scaled statistics: the same function, rounded differently (~1e-6 relative a layer);
    # without the statistics' rescaling the outputs would differ by the factor 3
    assert torch.allclose(stem_outputs[0], stem_outputs[1], rtol=1e-4, atol=1e-5)
    assert float((after - before).norm() / before.norm()) < 1e-4


def test_filter_selection_reinitialises_the_least_used_filters(lite0_file, digits):
    from hpt.data.dataset import sample_batches
    from hpt.data.files import find_images
    from hpt.data.views import eval_view

    backbone, _ = load_backbone(str(lite0_file), LITE0)
    planted = backbone.model.blocks[2][0]  # a real block: plant a dead filter in its expansion conv
    with torch.no_grad():
        planted.conv_pw.weight[7].zero_()
        planted.bn1.bias[7] = -1.0
    before = {k: v.clone() for k, v in backbone.native_state_dict().items()}
    images = find_images(digits["pretrain"])
    batches = sample_batches(images, eval_view(32, (0.13,) * 3, (0.3,) * 3), count=64, batch_size=32, seed=0)
    responses = measure_responses(backbone, batches)
    report = select_filters(backbone, 0.25, responses, seed=0)
    fresh = fresh_modules(backbone, seed=0)

    chosen = report["reinitialised"]
    assert 7 in chosen["blocks.2.0.conv_pw"]
    for layer in weighted_layers(backbone.model):
        if layer.name not in responses:
            continue
        out = layer.module.weight.shape[0]
        picked = chosen.get(layer.name, [])
        assert len(picked) == round(0.25 * out), layer.name
        kept = sorted(set(range(out)) - set(picked))
        if picked and kept:  # the choice follows the measured responses
            assert responses[layer.name][picked].max() <= responses[layer.name][kept].min()
        key = f"{layer.name}.weight"
        assert torch.equal(layer.module.weight[kept], before[key][kept]), layer.name  # bitwise unchanged
        assert torch.equal(layer.module.weight[picked], fresh[layer.name].weight[picked]), layer.name
        if layer.norm is not None and picked:
            assert torch.equal(layer.norm.running_var[picked], fresh[layer.norm_name].running_var[picked])
            assert torch.equal(layer.norm.weight[kept], before[f"{layer.norm_name}.weight"][kept])


def test_adaptations_compose_with_full_through_the_cli(digits, lite0_file, tmp_path):
    from hpt.checkpoints.files import read_provenance
    from hpt.cli import main

    run = tmp_path / "run"
    code = main(
        [
            "pretrain",
            "--data",
            str(digits["pretrain"]),
            "--out",
            str(run),
            "--base",
            str(lite0_file),
            "--backbone",
            LITE0,
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--image-size",
            "32",
            "--workers",
            "0",
            "--weight-scaling",
            "2",
            "--filter-selection",
            "0.1",
            "--set",
            "transfer.target_sample=32",
            "--set",
            "mocov2.queue_size=32",
        ]
    )
    assert code == 0
    adaptations = read_provenance(run / "backbone.safetensors")["adaptations"]
    assert adaptations["weight_scaling"]["factor"] == 2.0 and adaptations["weight_scaling"]["layers"] == 49
    assert adaptations["filter_selection"]["fraction"] == 0.1 and adaptations["filter_selection"]["layers"] > 0


@pytest.mark.parametrize(
    "model,transfer,message",
    [
        (ModelConfig(init="bn-only"), TransferConfig(), "--init bn-only needs a --base"),
        (ModelConfig(init="scratch"), TransferConfig(weight_scaling=2.0), "--init scratch has none"),
        (ModelConfig(base="x.pth", init="scratch"), TransferConfig(filter_selection=0.1), "--init scratch has none"),
    ],
)
def test_strategies_that_make_no_sense_are_refused(model, transfer, message):
    with pytest.raises(HptError, match=message):
        check_strategy(model, transfer)


def test_batch_norm_reestimation_is_the_exact_target_average():
    from hpt.backbones import create_backbone
    from hpt.transfer.bn_only import reestimate_batch_norm

    torch.manual_seed(0)
    backbone = create_backbone("torchvision:resnet18")
    batches = [torch.randn(4, 3, 32, 32) + i for i in range(3)]
    seen = reestimate_batch_norm(backbone, batches, "cpu")
    with torch.no_grad():
        stem = torch.cat([backbone.model.conv1(b) for b in batches])  # what bn1 normalises: 12 x 64 x 16 x 16
    assert seen == 12
    # float32 means over 3,072 values per channel, summed in another order than BatchNorm's: ~1e-6 (values ~1)
    assert torch.allclose(backbone.model.bn1.running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-5)
    per_batch_var = torch.stack([s.var(dim=(0, 2, 3), unbiased=True) for s in stem.split(4)])
    assert torch.allclose(backbone.model.bn1.running_var, per_batch_var.mean(0), rtol=1e-4)
    assert backbone.model.bn1.momentum == 0.1  # restored


def _vit_base(tmp_path):
    """A real (tiny, randomly initialised) timm ViT saved as a base file: LayerNorm only, no BatchNorm."""
    from hpt.backbones import create_backbone
    from hpt.checkpoints.files import save_tensors

    torch.manual_seed(0)
    vit = create_backbone("timm:test_vit")
    save_tensors(tmp_path / "vit.safetensors", vit.native_state_dict(), {"backbone": vit.name})
    return tmp_path / "vit.safetensors", vit.native_state_dict()


def test_bn_only_refuses_a_backbone_without_batch_norm_and_names_norm_only(tmp_path):
    base, _ = _vit_base(tmp_path)
    with pytest.raises(
        HptError, match=r"timm:test_vit has no BatchNorm layer \(its normalisation: LayerNorm\).*--init norm-only"
    ):
        init_bn_only(ModelConfig(base=str(base), init="bn-only"))


def test_norm_only_trains_the_normalisation_layers_and_nothing_else(digits, tmp_path, tiny_config):
    """Two real steps of MoCo v2 on a ViT: every LayerNorm weight or bias may move, every other tensor of the
    backbone comes back bit for bit; and some LayerNorm did move."""
    from hpt.checkpoints.files import read_tensors

    base, before = _vit_base(tmp_path)
    run = tmp_path / "run"
    config = tiny_config(
        digits["pretrain"],
        **{"model.base": str(base), "model.backbone": None, "model.init": "norm-only", "train.steps": 2,
           "optim.lr": 3.0, "monitor.label_free_sample": 0},
    )  # fmt: skip
    pretrain(config, run)
    after = read_tensors(run / "backbone.safetensors")[0]
    moved = {key for key in before if not torch.equal(before[key], after[key])}
    assert moved and all("norm" in key for key in moved), sorted(moved)[:5]


def test_a_run_from_scratch_starts_from_batch_norm_statistics_of_the_target(digits, tmp_path, tiny_config):
    """A random network's BatchNorm holds mean 0 / variance 1, close to the identity in evaluation mode, which
    training never starts from (its first step's statistics are the data's). From scratch, the statistics are
    estimated on the target sample before step 0: the starting backbone's statistics are those of the same
    random network re-estimated by hand on the same sample, and the run records it."""
    from hpt.checkpoints.files import read_provenance
    from hpt.train.build import _starting_point
    from hpt.train.plan import plan_run
    from hpt.transfer.bn_only import reestimate_batch_norm
    from hpt.transfer.scratch import init_scratch

    config = tiny_config(digits["pretrain"], **{"model.init": "scratch", "train.steps": 1})
    plan = plan_run(config, tmp_path / "run", overwrite=False, resume=False)
    torch.manual_seed(config.train.seed)
    backbone, _, _, adaptations = _starting_point(plan, torch.device("cpu"))
    torch.manual_seed(config.train.seed)
    by_hand, _ = init_scratch(config.model, plan.decoding.channels)
    fresh = {k: v.clone() for k, v in by_hand.native_state_dict().items()}
    seen = reestimate_batch_norm(by_hand, plan.target_sample(), "cpu")
    assert adaptations["batch_norm_statistics"] == f"estimated on {seen} target images before step 0"
    started, expected = backbone.native_state_dict(), by_hand.native_state_dict()
    statistics = [k for k in started if k.endswith(("running_mean", "running_var"))]
    assert statistics
    for key in started:
        assert torch.equal(started[key], expected[key]), key  # the same sample, the same order: bit for bit
    assert all(not torch.equal(started[k], fresh[k]) for k in statistics)  # every BN moved off mean 0 / var 1
    pretrain(config, tmp_path / "run")
    provenance = read_provenance(tmp_path / "run" / "backbone.safetensors")
    assert provenance["adaptations"]["batch_norm_statistics"] == adaptations["batch_norm_statistics"]


@pytest.mark.slow  # seconds of real work (training)
def test_partial_trains_the_last_block_alone_and_says_how_much(digits, lite0_file, tmp_path, capsys):
    """--init partial from the real Lite0: its last stage and the final conv and norm (timm's last group) move,
    every earlier tensor is bitwise the base's; the share is said; the frozen prefix's output carries no autograd
    graph, the trained tail's does."""
    pretrain(_from_lite0(digits, lite0_file, 3, **{"model.init": "partial"}), tmp_path / "run")
    said = " ".join(capsys.readouterr().err.split())
    base, _ = load_backbone(str(lite0_file), LITE0)
    before = base.native_state_dict()
    after = load_file(str(tmp_path / "run" / "backbone.safetensors"))
    last = tuple(blocks(base.model)[-1])
    assert last[0].startswith("blocks.6.") and "conv_head.weight" in last and "bn2.weight" in last
    for key in before:
        if key.startswith(("conv_stem", "bn1", *(f"blocks.{i}." for i in range(6)))):
            assert torch.equal(after[key], before[key]), key  # bitwise: frozen
    weights = [k for k in last if k.endswith(".weight")]
    assert sum(not torch.equal(after[k], before[k]) for k in weights) >= 0.9 * len(weights)
    trained = sum(before[k].numel() for k in last)
    total = sum(p.numel() for p in base.model.parameters())
    assert f"{trained:,} of its {total:,} parameters train ({trained / total:.1%})" in said

    backbone, _ = init_partial(ModelConfig(base=str(lite0_file), backbone=LITE0, init="partial"))
    features = backbone.model.forward_features(torch.randn(2, 3, 32, 32))
    assert features.requires_grad  # the trained tail builds a graph...
    prefix = backbone.model.blocks[5](backbone.model.blocks[:5](backbone.model.bn1(backbone.model.conv_stem(
        torch.randn(2, 3, 32, 32)))))  # fmt: skip
    assert not prefix.requires_grad  # ...the frozen prefix none


@pytest.mark.parametrize(
    ("name", "first_trained"),
    [("timm:vit_tiny_patch16_224", "blocks.11."), ("torchvision:resnet18", "layer4."), ("timm:test_resnet", "layer4.")],
)
def test_a_block_is_the_librarys_own(name, first_trained, tmp_path):
    """The last block of a ViT is its last transformer block with the final norm, of a ResNet its layer4 (timm's
    grouping, or torchvision's top-level layers); 2 blocks reach one further; more blocks than it has is one line.
    Random weights (no self-supervised ViT installs here): the grouping does not depend on them."""
    backbone = create_backbone(name)
    base = tmp_path / "base.pth"
    torch.save(backbone.native_state_dict(), base)
    model = ModelConfig(base=str(base), backbone=name, init="partial")
    one, _ = init_partial(model)
    trained = [n for n, p in one.model.named_parameters() if p.requires_grad]
    assert trained and all(n.startswith((first_trained, "norm.", "fc_norm.")) for n in trained), trained
    two, _ = init_partial(ModelConfig(base=str(base), backbone=name, init="partial", trainable_blocks=2))
    assert sum(p.requires_grad for p in two.model.parameters()) > len(trained)
    with pytest.raises(HptError, match="blocks after its stem; train fewer"):
        init_partial(ModelConfig(base=str(base), backbone=name, init="partial", trainable_blocks=99))
