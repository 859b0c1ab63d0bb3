"""Foreign checkpoint layouts with their real key names, and the real ImageNet base arriving intact."""

import numpy as np
import pytest
import skimage.data
import timm
import torch
import torchvision
from PIL import Image

from hpt.backbones import create_backbone
from hpt.checkpoints.files import read_tensors, save_tensors
from hpt.checkpoints.layouts import load_into, to_native
from hpt.checkpoints.sources import load_backbone
from hpt.errors import HptError


def _resnet18_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18().state_dict()


def _assert_same_backbone(backbone, native):
    for key, value in backbone.native_state_dict().items():
        assert torch.equal(value, native[key]), key


def test_torchvision_native_layout_drops_only_the_classifier():
    state = _resnet18_state()
    backbone = create_backbone("torchvision:resnet18")
    report = load_into(backbone, state, "test")
    assert report.layout == "native" and report.dropped == ["fc.weight", "fc.bias"]
    assert report.missing == report.unexpected == report.mismatched == []
    _assert_same_backbone(backbone, state)


def test_moco_layout_keeps_the_query_encoder():
    """MoCo's released checkpoints: `module.encoder_q.*`, `module.encoder_k.*`, `module.queue`, MLP in `fc.0/fc.2`."""
    state = _resnet18_state()
    moco = {f"module.encoder_q.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    moco |= {
        "module.encoder_q.fc.0.weight": torch.zeros(512, 512),
        "module.encoder_q.fc.2.weight": torch.zeros(128, 512),
    }
    moco |= {f"module.encoder_k.{k}": v + 1 for k, v in state.items() if not k.startswith("fc.")}
    moco |= {"module.queue": torch.zeros(128, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    backbone = create_backbone("torchvision:resnet18")
    report = load_into(backbone, moco, "test")
    assert report.layout == "moco"
    assert "module.queue" in report.dropped and "fc.0.weight" in report.dropped
    assert not report.missing and not report.unexpected
    _assert_same_backbone(backbone, state)


def test_mmselfsup_layout_strips_backbone_and_drops_neck_and_head():
    state = _resnet18_state()
    mm = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    mm |= {"neck.mlp.0.weight": torch.zeros(4, 4), "head.predictor.weight": torch.zeros(2)}
    backbone = create_backbone("torchvision:resnet18")
    report = load_into(backbone, mm, "test")
    assert report.layout == "backbone" and sorted(report.dropped) == ["head.predictor.weight", "neck.mlp.0.weight"]
    _assert_same_backbone(backbone, state)


def test_ddp_wrapped_and_timm_layouts():
    torch.manual_seed(1)
    state = timm.create_model("resnet18").state_dict()
    backbone = create_backbone("timm:resnet18")
    report = load_into(backbone, {f"module.{k}": v for k, v in state.items()}, "test")
    assert report.layout == "ddp" and report.dropped == ["fc.weight", "fc.bias"]
    _assert_same_backbone(backbone, state)


def test_lukemelas_efficientnet_file_maps_tensor_for_tensor(lite0_file):
    state, provenance = read_tensors(lite0_file)
    backbone = create_backbone("timm:tf_efficientnet_lite0")
    native, report = to_native(state, backbone)
    assert provenance is None and report.layout == "lukemelas-efficientnet"
    assert report.ok and report.loaded == len(native) == 294 and report.unexpected == []
    assert report.dropped == ["classifier.weight", "classifier.bias"]
    assert torch.equal(native["blocks.1.0.conv_pwl.weight"], state["_blocks.1._project_conv.weight"])
    assert torch.equal(native["blocks.0.0.conv_pw.weight"], state["_blocks.0._project_conv.weight"])
    assert torch.equal(native["bn2.running_var"], state["_bn1.running_var"])


def test_the_real_imagenet_base_sees_a_cat(lite0_file):
    """scikit-image's `chelsea` through the converted weights: ImageNet classes 281-285 are cats."""
    state, _ = read_tensors(lite0_file)
    backbone = create_backbone("timm:tf_efficientnet_lite0")
    load_into(backbone, state, "base")
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    model.load_state_dict(
        backbone.native_state_dict() | {"classifier.weight": state["_fc.weight"], "classifier.bias": state["_fc.bias"]},
        strict=True,
    )
    image = Image.fromarray(skimage.data.chelsea()).resize((224, 224), Image.BICUBIC)
    x = torch.tensor(np.asarray(image)).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)[None]
    with torch.no_grad():
        top = model.eval()(x).softmax(-1)[0].topk(3)
    assert 281 <= int(top.indices[0]) <= 285 and float(top.values[0]) > 0.5


def test_a_checkpoint_of_another_architecture_is_refused_with_its_keys(lite0_file):
    with pytest.raises(HptError) as info:
        load_backbone(str(lite0_file), "torchvision:resnet18")
    message = str(info.value)
    assert "does not fit torchvision:resnet18" in message and "missing (first: conv1.weight" in message
    assert "mis-shaped (first: bn1.weight (32,) vs (64,)" in message and "\n" not in message


def test_hpt_files_carry_their_architecture(tmp_path, lite0_file):
    backbone, origin = load_backbone(str(lite0_file), "timm:tf_efficientnet_lite0")
    save_tensors(tmp_path / "b.safetensors", backbone.native_state_dict(), {"backbone": backbone.name})
    again, origin = load_backbone(str(tmp_path / "b.safetensors"))  # no --backbone needed
    assert again.name == "timm:tf_efficientnet_lite0" and origin.load_report.layout == "native"
    _assert_same_backbone(again, backbone.native_state_dict())
    with pytest.raises(HptError, match="holds a timm:tf_efficientnet_lite0 backbone but --backbone says"):
        load_backbone(str(tmp_path / "b.safetensors"), "torchvision:resnet18")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"conv1.weight": torch.zeros(1), "evil": _Exploit(str(marker))}, tmp_path / "evil.pth")
    assert not marker.exists()
    with pytest.raises(HptError, match="refused; it is not a plain-tensor PyTorch file"):
        load_backbone(str(tmp_path / "evil.pth"), "torchvision:resnet18")
    assert not marker.exists()


def test_corrupt_and_unknown_files_are_named(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(HptError, match="not a valid safetensors file"):
        load_backbone(str(tmp_path / "bad.safetensors"), "torchvision:resnet18")
    (tmp_path / "weights.h5").write_bytes(b"\x89HDF")
    with pytest.raises(HptError, match="unknown format"):
        load_backbone(str(tmp_path / "weights.h5"), "torchvision:resnet18")


@pytest.fixture
def hub_reachable(monkeypatch, tmp_path):
    """The network, replaced: the hub's host answers the reachability probe (`backbones/hub_cache.py`), and
    torch.hub's cache is an empty folder, so that the download is asked for."""
    import socket

    class Connection:
        def close(self) -> None:
            pass

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: Connection())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_hub_names_download_through_the_library(monkeypatch, hub_reachable):
    """`--base torchvision:resnet18` fetches torchvision's weights; only the network fetch is replaced."""
    served = _resnet18_state()
    urls = []

    def fake_fetch(url, *args, **kwargs):
        urls.append(url)
        return served

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fake_fetch)
    backbone, origin = load_backbone("torchvision:resnet18")
    assert urls and urls[0].endswith(".pth")
    assert origin.to_dict() == {"spec": "torchvision:resnet18", "source": "hub", "backbone": "torchvision:resnet18"}
    _assert_same_backbone(backbone, served)


def test_a_failed_download_is_one_clear_line(monkeypatch, hub_reachable):
    def offline(url, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(HptError, match="could not fetch its pretrained weights from the hub .network is unreachable"):
        load_backbone("torchvision:resnet50")


# --- the layouts other libraries write, each file made the way that library makes it ---------------------------


def _resnet18_children():
    """How lightly's and many tutorials' examples build a backbone: the model's children but the classifier."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    return resnet, torch.nn.Sequential(*list(resnet.children())[:-1])


def _lightning_checkpoint(path, backbone):
    """A real Lightning module (self.backbone, a projection head) trained one step and saved by its Trainer."""
    import pytorch_lightning as pl

    class SSL(pl.LightningModule):
        def __init__(self, lr=0.0):
            super().__init__()
            self.save_hyperparameters()
            self.backbone, self.projection = backbone, torch.nn.Linear(512, 8)

        def training_step(self, batch, index):
            return self.projection(self.backbone(batch[0]).flatten(1)).square().mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)  # lr 0: the weights stay comparable

    images = torch.utils.data.TensorDataset(torch.randn(4, 3, 32, 32))
    trainer = pl.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    module = SSL()
    trainer.fit(module, torch.utils.data.DataLoader(images, batch_size=2))
    trainer.save_checkpoint(path)
    return module


def test_a_lightning_checkpoint_of_a_sequential_of_children_maps_by_order(tmp_path):
    resnet, children = _resnet18_children()
    module = _lightning_checkpoint(tmp_path / "ssl.ckpt", children)
    backbone, origin = load_backbone(str(tmp_path / "ssl.ckpt"), "torchvision:resnet18")
    report = origin.load_report
    assert report.layout == "backbone+sequential-children" and report.missing == report.unexpected == []
    assert report.dropped == ["projection.weight", "projection.bias"]
    # the children are the ResNet's own modules: its state dict is what the checkpoint saved, in native keys
    _assert_same_backbone(backbone, {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")})
    assert module.global_step == 1 and int(resnet.bn1.num_batches_tracked) == 1  # a real step was taken


def test_a_sequential_state_dict_saved_alone_maps_by_order_and_a_shifted_one_is_refused(tmp_path):
    resnet, children = _resnet18_children()
    torch.save(children.state_dict(), tmp_path / "backbone.pth")
    backbone, origin = load_backbone(str(tmp_path / "backbone.pth"), "torchvision:resnet18")
    assert origin.load_report.layout == "sequential-children"
    _assert_same_backbone(backbone, {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")})
    # without the first convolution the indices are shifted by one: index 3 (layer1 there) is the max-pool here
    torch.save(torch.nn.Sequential(*list(resnet.children())[1:-1]).state_dict(), tmp_path / "shifted.pth")
    with pytest.raises(HptError, match=r"keys '3\.\*' of a Sequential of children cannot be torchvision:resnet18"):
        load_backbone(str(tmp_path / "shifted.pth"), "torchvision:resnet18")


def test_a_dino_checkpoint_gives_its_teacher_and_says_so(tmp_path):
    """DINO's main_dino.py saves student (DDP-wrapped), teacher, optimiser, epoch and its argparse options."""
    import argparse

    def network(seed):
        torch.manual_seed(seed)
        return {
            **{f"backbone.{k}": v for k, v in timm.create_model("test_vit", num_classes=0).state_dict().items()},
            "head.mlp.0.weight": torch.randn(16, 64),
            "head.last_layer.weight_g": torch.ones(32, 1),
        }

    student, teacher = network(0), network(1)
    torch.save(
        {
            "student": {f"module.{k}": v for k, v in student.items()},
            "teacher": teacher,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
            "epoch": 3,
            "args": argparse.Namespace(arch="vit_small", patch_size=16, out_dim=65536),
            "dino_loss": {"center": torch.zeros(1, 32)},
        },
        tmp_path / "checkpoint.pth",
    )
    backbone, origin = load_backbone(str(tmp_path / "checkpoint.pth"), "timm:test_vit")
    assert origin.load_report.taken_from.startswith("the teacher")
    assert origin.load_report.layout == "backbone" and not origin.load_report.missing
    _assert_same_backbone(backbone, {k[len("backbone.") :]: v for k, v in teacher.items() if k.startswith("backbone.")})


def test_a_timm_training_checkpoint_gives_its_ema_weights_and_says_so(tmp_path):
    """Written by timm's own CheckpointSaver, with a ModelEmaV3 beside the model, as `train.py` does."""
    import argparse

    from timm.utils import CheckpointSaver, ModelEmaV3

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10)
    ema = ModelEmaV3(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)  # the EMA is now halfway: neither the raw weights nor the first ones
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    saver = CheckpointSaver(
        model, optimizer, args=argparse.Namespace(model="resnet18"), model_ema=ema, checkpoint_dir=str(tmp_path)
    )
    saver.save_checkpoint(epoch=0, metric=0.5)
    file = next(tmp_path.glob("*.pth.tar"))
    backbone, origin = load_backbone(str(file), "timm:resnet18")
    assert origin.load_report.taken_from.startswith("state_dict_ema") and origin.load_report.layout == "native"
    _assert_same_backbone(backbone, {k: v for k, v in ema.module.state_dict().items() if not k.startswith("fc.")})
    assert not torch.equal(backbone.native_state_dict()["conv1.weight"], model.conv1.weight)


# --- a file that does not name its architecture -----------------------------------------------------------------


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_the_architecture_of_a_foreign_file_is_found_from_its_keys(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "mobile.pth")
    backbone, origin = load_backbone(str(tmp_path / "mobile.pth"))
    assert backbone.name == "torchvision:mobilenet_v3_small"
    assert origin.load_report.identified.startswith("identified from its keys and shapes as torchvision:mobilenet")


@pytest.mark.slow  # seconds of real work (training, a subprocess): make test-fast leaves it out
def test_architectures_that_compute_the_same_features_are_one_answer_and_different_ones_are_listed(tmp_path):
    torch.save(_resnet18_state(), tmp_path / "resnet.pth")
    backbone, origin = load_backbone(str(tmp_path / "resnet.pth"))
    assert backbone.name == "torchvision:resnet18" and "timm:resnet18 fit too and compute the same features" in (
        origin.load_report.identified
    )
    # the same keys and shapes, but TensorFlow-style padding in one of them: different features, so no guess
    torch.manual_seed(0)
    torch.save(timm.create_model("efficientnet_b0").state_dict(), tmp_path / "effnet.pth")
    with pytest.raises(
        HptError, match=r"fit several architectures that compute different features \(.*efficientnet_b0"
    ):
        load_backbone(str(tmp_path / "effnet.pth"))
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "odd.pth")
    with pytest.raises(HptError, match=r"fit none of the \d+ architectures .* name it with --backbone"):
        load_backbone(str(tmp_path / "odd.pth"))
