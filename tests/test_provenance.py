"""Provenance typed both ways: files written by every hpt version (0.1-0.7) read into the same records, and
what the readers make of them (timm's config.json, the model card, `hpt eval`'s preprocessing, the selection
warning) works on each; what hpt writes now comes back unchanged through `from_dict`/`to_dict`.

The examples in tests/data/provenance are the JSON sidecars of real runs of each release (`hpt pretrain` of
timm's test ResNet at 16 px for 2 steps on 64 MNIST digits, from scratch (a), then from (a) with a kNN monitor
(b); 0.1 at fd84b1f^, 0.2-0.6 at the commits that set each version, 0.7 at this change): the backbone and
checkpoint of (b), whose base records (a)'s provenance in turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpt.checkpoints.provenance import BACKBONE_FORMAT, CHECKPOINT_FORMAT, FileProvenance, Selected
from hpt.data.files import ImageList
from hpt.eval.labelled import LabelledImages
from hpt.eval.runner import recorded_image_size, recorded_stats, selection_warnings
from hpt.export.card import model_card
from hpt.export.timm_config import timm_config

EXAMPLES = Path(__file__).parent / "data" / "provenance"
VERSIONS = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]


def _example(version: str, kind: str) -> dict:
    return json.loads((EXAMPLES / f"{version}-{kind}.json").read_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_every_versions_files_read_into_the_records(version):
    backbone = FileProvenance.from_dict(_example(version, "backbone"))
    checkpoint = FileProvenance.from_dict(_example(version, "checkpoint"))
    assert backbone.hpt_version == f"{version}.0" and backbone.is_run
    assert (backbone.format, checkpoint.format) == (BACKBONE_FORMAT, CHECKPOINT_FORMAT)
    assert backbone.backbone == "timm:test_resnet" and backbone.method == "mocov2" and backbone.init == "full"
    assert backbone.steps == checkpoint.steps == 2 and backbone.image_size == 16
    assert backbone.data.images == 64 and backbone.data.channels == 3 and len(backbone.data.mean or []) == 3
    assert backbone.parent is not None and backbone.parent.path.endswith("checkpoint.safetensors")
    assert isinstance(backbone.selected, Selected) and backbone.selected.picked  # a kNN monitor picked
    base = backbone.base
    assert base is not None and base.source == "file" and base.load_report is not None
    assert base.provenance is not None and base.provenance.init == "scratch" and base.provenance.steps == 2
    assert base.provenance.base is not None and base.provenance.base.source == "scratch"  # the lineage's end


@pytest.mark.parametrize("version", VERSIONS)
def test_the_readers_work_on_every_versions_files(version):
    record = FileProvenance.from_dict(_example(version, "backbone"))
    config = timm_config(record, num_features=8)
    assert config["pretrained_cfg"]["input_size"] == [3, 16, 16]
    assert config["pretrained_cfg"]["mean"] == record.data.mean and config["hpt"]["version"] == f"{version}.0"
    card = model_card(record, "(lineage)")
    assert "# timm:test_resnet, mocov2 continued on pretrain" in card and "| steps | 2 |" in card
    assert recorded_image_size(record) == 16
    stats = recorded_stats(record, channels=3)
    assert stats is not None and list(stats.mean) == record.data.mean
    assert recorded_stats(record, channels=4) is None  # a 3-band record says nothing of 4 bands
    # 0.7 picks on a held-out fifth of monitor.train; before 0.7 on monitor.test itself: hpt eval says so
    picked_on = record.config_value("monitor.train" if version == "0.7" else "monitor.test")
    scored_on = {"test": ImageList([], None, None)}
    assert selection_warnings(record, LabelledImages(scored_on, {"test": picked_on}))
    assert not selection_warnings(record, LabelledImages(scored_on, {"test": "/elsewhere"}))


def test_intensity_and_resolved_settings_are_absent_where_old_versions_did_not_record_them():
    old, new = (FileProvenance.from_dict(_example(v, "backbone")) for v in ("0.1", "0.7"))
    assert old.data.intensity is None and old.resolved is None and old.data.fingerprint == ""
    assert new.data.intensity is not None and new.data.intensity["mode"] == "full-range" and new.resolved is not None
    assert "0.0075" not in model_card(old, "") and "cosine to 0" in model_card(new, "")  # the rate as recorded


@pytest.mark.parametrize("kind", ["backbone", "checkpoint"])
def test_what_hpt_writes_now_comes_back_unchanged(kind):
    raw = _example("0.7", kind)
    assert FileProvenance.from_dict(raw).to_dict() == raw


def test_a_file_that_names_its_architecture_only_is_not_a_run():
    record = FileProvenance.from_dict({"backbone": "timm:resnet18"})
    assert not record.is_run and record.image_size is None and record.selected is None and record.base is None
    assert record.to_dict()["backbone"] == "timm:resnet18"
