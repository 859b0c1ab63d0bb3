"""`--init lora`: peft's adapters beside the frozen base, trained with the norms (and any unfrozen blocks), merged
into an ordinary model on export, kept unmerged in the checkpoint so that a run resumes bit for bit."""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hpt.backbones import create_backbone
from hpt.backbones.adapters import adapted_layers
from hpt.checkpoints.sources import load_backbone
from hpt.config import ModelConfig, load_config
from hpt.errors import HptError
from hpt.train.loop import pretrain
from hpt.transfer import check_strategy
from hpt.transfer.lora import init_lora
from hpt.transfer.norm_only import norm_layers

LITE0 = "timm:tf_efficientnet_lite0"


def _base(tmp_path, name: str):
    """A real architecture with seeded random weights saved as a base file (no self-supervised ViT installs here;
    what is tested does not depend on the weights)."""
    torch.manual_seed(0)
    backbone = create_backbone(name)
    torch.save(backbone.native_state_dict(), tmp_path / "base.pth")
    return tmp_path / "base.pth", backbone


@pytest.mark.parametrize("name", ["timm:test_vit", LITE0, "torchvision:resnet18"])
def test_adapters_merge_into_the_librarys_own_model(name, tmp_path):
    """With trained (non-zero) adapters, the merged weights load strictly into a fresh model of the library under
    the base's own keys, and it computes what the adapted backbone does. float32 sums in another order: ~1e-7
    relative per product, a few 1e-6 on outputs of magnitude ~5 through these depths (measured 3e-6 to 8e-6), so
    within 1e-5 of the outputs' scale; the adapters moved the outputs by 0.3 to 1.1, so the check can fail."""
    base, original = _base(tmp_path, name)
    adapted, _ = init_lora(ModelConfig(base=str(base), backbone=name, init="lora", lora_rank=4))
    layers = adapted_layers(adapted.model)
    assert layers
    for _, layer in layers:
        nn.init.normal_(layer.lora_B["default"].weight, std=0.02)
    merged = adapted.native_state_dict()
    assert list(merged) == list(original.native_state_dict())  # the library's own keys, in its order
    fresh = create_backbone(name)
    fresh.load_native_state_dict(merged)  # strict
    size = adapted.fixed_input_size or 64
    images = torch.randn(4, 3, size, size)
    with torch.no_grad():
        want, got, before = adapted.eval()(images), fresh.eval()(images), original.eval()(images)
    assert (got - want).abs().max() <= 1e-5 * max(1.0, float(want.abs().max()))
    assert (want - before).abs().max() > 0.1


def test_adapters_go_beside_the_frozen_blocks_and_the_unfrozen_ones_train_whole(tmp_path):
    """ExPLoRA's recipe on a ViT: the last block (with the final norm) trains in full, every attention and MLP
    linear before it carries an adapter, the patch embedding (the stem) none; every LayerNorm trains; every other
    base tensor is frozen. An adapter starts at zero: the backbone computes exactly what the base did."""
    base, original = _base(tmp_path, "timm:test_vit")
    backbone, _ = init_lora(ModelConfig(base=str(base), backbone="timm:test_vit", init="lora", trainable_blocks=1))
    last = len(backbone.model.blocks) - 1
    adapted = {name for name, _ in adapted_layers(backbone.model)}
    expected = {f"blocks.{i}.{layer}" for i in range(last) for layer in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
    assert adapted == expected
    norms = {f"{name}.{leaf}" for name, _ in norm_layers(backbone) for leaf in ("weight", "bias")}
    for name, parameter in backbone.model.named_parameters():
        trains = ".lora_" in name or name.startswith((f"blocks.{last}.", "norm.", "fc_norm.")) or name in norms
        assert parameter.requires_grad == trains, name
    images = torch.randn(2, 3, backbone.fixed_input_size or 64, backbone.fixed_input_size or 64)
    with torch.no_grad():
        assert torch.equal(backbone.eval()(images), original.eval()(images))


def test_chosen_targets_and_what_is_refused(tmp_path, monkeypatch):
    base, _ = _base(tmp_path, "timm:test_vit")
    model = ModelConfig(base=str(base), backbone="timm:test_vit", init="lora", lora_targets=[r"blocks\.\d+\.attn\.qkv"])
    backbone, _ = init_lora(model)
    assert {name.rsplit(".", 2)[-2:] == ["attn", "qkv"] for name, _ in adapted_layers(backbone.model)} == {True}
    with pytest.raises(HptError, match=r"'mlp\.fc9' matches no linear or ungrouped convolution .* names are like"):
        init_lora(model.model_copy(update={"lora_targets": ["mlp.fc9"]}))
    with pytest.raises(HptError, match=r"'blocks\[' is not a regular expression"):
        init_lora(model.model_copy(update={"lora_targets": ["blocks["]}))
    with pytest.raises(HptError, match=r"model.lora_rank is for --init lora; the init is full"):
        ModelConfig(base=str(base), init="full", lora_rank=4)
    with pytest.raises(HptError, match=r"--init lora keeps them frozen"):
        check_strategy(model, load_config(overrides={"transfer.weight_scaling": 0.5}).transfer)
    checkpoint = tmp_path / "checkpoint.safetensors"  # a lora run's checkpoint: the adapters beside their layers
    save_file({f"backbone.model.{k}": v.contiguous() for k, v in backbone.model.state_dict().items()}, checkpoint)
    with pytest.raises(HptError, match=r"holds LoRA adapters apart .* give the run's backbone.safetensors"):
        load_backbone(str(checkpoint), "timm:test_vit")
    monkeypatch.setitem(sys.modules, "peft", None)  # as if not installed: `import peft` raises ImportError
    with pytest.raises(HptError, match=r"--init lora needs peft, not installed here: pip install 'hpt\[lora\]'"):
        init_lora(model)


@pytest.mark.slow  # seconds of real work (training)
def test_a_lora_run_trains_adapters_and_norms_and_exports_an_ordinary_model(digits, lite0_file, tmp_path, capsys):
    """Three real steps of MoCo v2 from the ImageNet Lite0 at a learning rate that moves what trains: the exported
    backbone has the Lite0's keys and loads strictly into timm's own model; every adapted weight moved (merged),
    every tensor neither adapted nor a norm is bitwise the base's; the checkpoint keeps the adapters apart; the
    share that trains is said."""
    import timm

    config = load_config(
        overrides={
            "data.path": str(digits["pretrain"]), "data.image_size": 32, "data.num_workers": 0,
            "model.base": str(lite0_file), "model.backbone": LITE0, "model.init": "lora", "train.steps": 3,
            "train.batch_size": 16, "mocov2.queue_size": 64, "optim.lr": 3.0, "monitor.label_free_sample": 0,
        }
    )  # fmt: skip
    pretrain(config, tmp_path / "run")
    said = " ".join(capsys.readouterr().err.split())
    before = load_backbone(str(lite0_file), LITE0)[0].native_state_dict()
    after = load_file(str(tmp_path / "run" / "backbone.safetensors"))
    timm.create_model("tf_efficientnet_lite0", num_classes=0).load_state_dict(after, strict=True)
    backbone, _ = init_lora(config.model)
    adapted = {f"{name}.weight" for name, _ in adapted_layers(backbone.model)}
    norms = {f"{name}.{leaf}" for name, _ in norm_layers(backbone) for leaf in ("weight", "bias", "running_mean",
                                                                                 "running_var")}  # fmt: skip
    assert adapted and set(after) == set(before)
    for key in before:
        if key in adapted:
            assert not torch.equal(after[key], before[key]), key
        elif key not in norms and not key.endswith("num_batches_tracked"):
            assert torch.equal(after[key], before[key]), key  # bitwise: frozen
    checkpoint = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
    assert any(".lora_A.default." in key for key in checkpoint)
    trained = sum(p.numel() for p in backbone.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in backbone.model.parameters())
    adapters = sum(p.numel() for n, p in backbone.model.named_parameters() if ".lora_" in n)
    assert (
        f"{trained:,} of its {total:,} parameters train ({trained / total:.1%}), the rest is frozen (init lora); "
        f"{adapters:,} of them in LoRA adapters" in said
    )


def test_a_stopped_lora_run_resumes_bit_for_bit(tiny_config, digits, tmp_path, stopped_and_resumed):
    base, _ = _base(tmp_path, "timm:test_resnet")
    config = tiny_config(
        digits["pretrain"], **{"model.base": str(base), "model.init": "lora", "train.steps": 5, "optim.lr": 3.0}
    )
    whole, resumed = stopped_and_resumed(config)
    assert any(".lora_B.default." in key for key in whole)
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_a_target_named_like_a_deeper_layer_adapts_itself_alone(tmp_path):
    """peft matches a list of names by suffix too: 'conv1' (a ResNet's stem) would also adapt every block's
    'layerN.M.conv1'; hpt hands peft the exact names."""
    base, _ = _base(tmp_path, "torchvision:resnet18")
    model = ModelConfig(base=str(base), backbone="torchvision:resnet18", init="lora", lora_targets=["conv1"])
    backbone, _ = init_lora(model)
    assert [name for name, _ in adapted_layers(backbone.model)] == ["conv1"]
