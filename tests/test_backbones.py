import pytest
import timm
import torch
import torchvision

from hpt.backbones import create_backbone
from hpt.errors import HptError

# One entry per family and model kind hpt documents; every entry gets the same contract test for free.
REGISTERED = ["torchvision:resnet18", "torchvision:resnet50", "timm:tf_efficientnet_lite0", "timm:resnet18"]


@pytest.mark.parametrize("name", REGISTERED)
def test_every_backbone_meets_the_contract(name):
    backbone = create_backbone(name)
    features = backbone.forward_features(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, backbone.num_features)
    assert not any(backbone.is_classifier_key(k) for k in backbone.native_state_dict())


@pytest.mark.parametrize("name", REGISTERED)
def test_native_state_dict_loads_strictly_into_the_library_model(name):
    family, model = name.split(":")
    state = create_backbone(name).native_state_dict()
    if family == "timm":
        fresh = timm.create_model(model, num_classes=0)
    else:
        fresh = torchvision.models.get_model(model)
        fresh.fc = torch.nn.Identity()
    fresh.load_state_dict(state, strict=True)


@pytest.mark.parametrize(
    "name,message",
    [
        ("resnet18", "expected FAMILY:MODEL"),
        ("keras:resnet18", "unknown family 'keras'"),
        ("timm:not_a_model", "no such timm model"),
        ("torchvision:resnet19", "no such torchvision model"),
    ],
)
def test_unknown_names_fail_clearly(name, message):
    with pytest.raises(HptError, match=message):
        create_backbone(name)


# The smallest model of each family (torchvision module) and the smallest size it takes; the first test below
# fails when torchvision adds a family this table does not cover.
TORCHVISION_FAMILIES = {
    "alexnet": ("alexnet", 64),
    "convnext": ("convnext_tiny", 32),
    "densenet": ("densenet121", 32),
    "efficientnet": ("efficientnet_b0", 32),
    "googlenet": ("googlenet", 32),
    "inception": ("inception_v3", 75),
    "maxvit": ("maxvit_t", 224),
    "mnasnet": ("mnasnet0_5", 32),
    "mobilenetv2": ("mobilenet_v2", 32),
    "mobilenetv3": ("mobilenet_v3_small", 32),
    "regnet": ("regnet_x_400mf", 32),
    "resnet": ("resnet18", 32),
    "shufflenetv2": ("shufflenet_v2_x0_5", 32),
    "squeezenet": ("squeezenet1_1", 32),
    "swin_transformer": ("swin_v2_t", 32),
    "vgg": ("vgg11", 32),
    "vision_transformer": ("vit_b_32", 224),
}


def test_the_table_covers_every_torchvision_classification_family():
    families = {
        torchvision.models.get_model_builder(name).__module__.rpartition(".")[2]
        for name in torchvision.models.list_models(module=torchvision.models)
    }
    assert families == set(TORCHVISION_FAMILIES)


@pytest.mark.parametrize("model,size", TORCHVISION_FAMILIES.values(), ids=list(TORCHVISION_FAMILIES))
def test_every_torchvision_family_builds_trains_exports_and_reloads_strictly(model, size, tmp_path):
    """Build headless, a training-mode forward and backward, export to safetensors, and reload: the file holds
    every tensor of torchvision's own model except its final classifying layer's (weight, bias), each with
    torchvision's key and shape, and loads back into a fresh hpt backbone strictly and bit for bit."""
    from hpt.backbones.contract import with_module_versions
    from hpt.checkpoints.files import read_tensors, save_tensors
    from hpt.checkpoints.sources import load_backbone

    torch.manual_seed(0)
    backbone = create_backbone(f"torchvision:{model}")
    features = backbone.train()(torch.randn(2, 3, size, size))
    assert features.shape == (2, backbone.num_features)
    features.square().mean().backward()
    assert all(p.grad is not None for p in backbone.parameters())  # every parameter is part of the features

    save_tensors(tmp_path / "b.safetensors", backbone.native_state_dict(), {"backbone": backbone.name})
    state, _ = read_tensors(tmp_path / "b.safetensors")
    options = {"aux_logits": False} if model in ("googlenet", "inception_v3") else {}
    library = torchvision.models.get_model(model, **options)
    # a file holds tensors only; MNASNet also wants its format version, which `state_dict()` carries
    missing, unexpected = library.load_state_dict(with_module_versions(library, state), strict=False)
    layer = library.get_submodule(backbone.classifier_prefix.rstrip("."))
    assert unexpected == [] and missing == [f"{backbone.classifier_prefix}{key}" for key in layer.state_dict()]
    assert (getattr(layer, "in_features", None) or layer.in_channels) == backbone.num_features

    again, origin = load_backbone(str(tmp_path / "b.safetensors"))
    assert origin.load_report.missing == origin.load_report.unexpected == []
    for key, value in backbone.native_state_dict().items():
        assert torch.equal(value, again.native_state_dict()[key]), key


def test_a_fixed_size_model_refuses_another_size_in_one_line(digits, tmp_path, tiny_pretrain, capsys):
    """torchvision's ViT takes 224 px only: a 16-px run stops before anything is written, naming the fix."""
    code = tiny_pretrain(digits["pretrain"], tmp_path / "run", 2, "--set=model.backbone=torchvision:vit_b_32")
    error = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "run").exists()
    assert "torchvision:vit_b_32 takes 224-px images only" in error and "data.image_size is 16: set it to 224" in error
    assert create_backbone("torchvision:vit_b_32").fixed_input_size == 224
    # timm's ViTs take any size: built with dynamic_img_size, their position embeddings are resampled
    timm_vit = create_backbone("timm:test_vit")
    assert timm_vit.fixed_input_size is None and timm_vit(torch.randn(1, 3, 48, 48)).shape == (1, 64)


class _TinyEncoder(torch.nn.Module):
    """A user's own encoder: not a torchvision or timm model, with its own key names."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.mix = torch.nn.Conv2d(8, 16, 3, stride=2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.mix(self.stem(x))).flatten(1)


def test_any_module_is_a_backbone_through_the_api():
    import hpt

    torch.manual_seed(0)
    module = _TinyEncoder()
    name = hpt.register_backbone("tiny-encoder", module, image_size=32)
    assert name == "module:tiny-encoder"
    base = create_backbone(name, pretrained=True)  # the registered weights, found as a base
    assert base.num_features == 16 and base.native_state_dict().keys() == module.state_dict().keys()
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in base.native_state_dict().items())
    registered = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        module.mix.weight.zero_()  # what happens to the module after registration does not reach the base
    assert not torch.equal(create_backbone(name, pretrained=True).native_state_dict()["mix.weight"], module.mix.weight)
    scratch = create_backbone(name)  # re-drawn: the scratch baseline
    assert not torch.equal(scratch.native_state_dict()["mix.weight"], registered["mix.weight"])
    assert create_backbone(name, in_chans=5).native_state_dict()["stem.0.weight"].shape == (8, 5, 3, 3)


@pytest.mark.parametrize(
    "module,message",
    [
        (torch.nn.Conv2d(3, 4, 3), r"must map N x C x H x W images to N x F features; it returned \(2, 4, 30, 30\)"),
        (torch.nn.Linear(7, 2), r"a forward pass on 2 x 3 x 32 x 32 failed"),
    ],
)
def test_a_module_that_gives_no_feature_vector_is_refused(module, message):
    import hpt

    with pytest.raises(HptError, match=message):
        hpt.register_backbone("bad", module, image_size=32)


def test_a_registered_module_is_continued_and_exported_under_its_own_keys(digits, tmp_path, tiny_config):
    """Two real MoCo v2 steps from a user's module: the exported file has the module's own keys, loads strictly
    into a fresh instance of the user's class, and the weights moved from the registered ones."""
    import hpt
    from hpt.checkpoints.files import read_tensors

    torch.manual_seed(0)
    module = _TinyEncoder()
    name = hpt.register_backbone("tiny-run", module, image_size=32)
    config = tiny_config(
        digits["pretrain"],
        **{"model.base": name, "model.backbone": None, "train.steps": 2, "monitor.label_free_sample": 0},
    )
    hpt.pretrain(config, tmp_path / "run")
    state, provenance = read_tensors(tmp_path / "run" / "backbone.safetensors")
    assert provenance["backbone"] == name and provenance["base"]["source"] == "module"
    fresh = _TinyEncoder()
    fresh.load_state_dict(state, strict=True)
    assert not torch.equal(state["mix.weight"], module.mix.weight)
