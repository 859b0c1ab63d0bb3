"""The online monitor, the speed-up and `hpt report` on real short runs."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from PIL import Image

from hpt.cli import main
from hpt.core.run_files import read_metrics, read_monitor
from hpt.report.speedup import describe, speedup, steps_to_reach


def test_speedup_on_hand_made_curves():
    scratch = [(0, 0.20), (1000, 0.40), (5000, 0.60), (10000, 0.58)]  # best 0.60 after 5000 steps
    assert steps_to_reach(scratch, 0.60) == 5000
    assert speedup(scratch, [(0, 0.5), (50, 0.55), (500, 0.61)]) == 10.0
    assert speedup(scratch, [(0, 0.5), (100, 0.60)]) == 50.0  # reaching it exactly counts
    assert speedup(scratch, [(0, 0.1), (5000, 0.59)]) is None and describe(None) == "not reached"
    assert speedup(scratch, [(0, 0.7)]) == math.inf and describe(math.inf).startswith("at step 0")
    assert math.isnan(speedup([(0, 0.5), (10, 0.4)], [(0, 0.1), (5, 0.6)]))
    assert math.isnan(speedup([(0, 0.5), (10, 0.4)], [(0, 0.7)]))  # scratch never improved: no speed-up to state
    assert describe(math.nan).startswith("undefined")
    assert describe(10.0) == "10.0x"
    with pytest.raises(ValueError):
        speedup([], [(0, 0.1)])


@pytest.fixture(scope="module")
def monitored_runs(digits, lite0_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("monitored")
    common = [
        "--data",
        str(digits["pretrain"]),
        "--backbone",
        "timm:tf_efficientnet_lite0",
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--image-size",
        "32",
        "--workers",
        "0",
        "--set",
        "mocov2.queue_size=32",
        "--set",
        "train.log_every=2",
        "--monitor-train",
        str(digits["train"]),
        "--monitor-test",
        str(digits["test"]),
        "--monitor-every",
        "2",
    ]
    assert main(["pretrain", *common, "--init", "scratch", "--out", str(root / "scratch")]) == 0
    assert main(["pretrain", *common, "--base", str(lite0_file), "--out", str(root / "hpt")]) == 0
    assert (
        main(
            [
                "eval",
                str(root / "hpt"),
                "--train",
                str(digits["train"]),
                "--test",
                str(digits["test"]),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    return root


def test_monitor_logs_the_start_every_n_steps_and_the_end(monitored_runs):
    lines = read_monitor(monitored_runs / "hpt")
    assert [line["step"] for line in lines] == [0, 2, 4]
    assert all(0.0 <= line["knn_top1_k20"] <= 1.0 for line in lines)
    assert lines[0]["knn_top1_k20"] > 0.3  # step 0 is the ImageNet base itself, far above chance (10%)
    assert [m["step"] for m in read_metrics(monitored_runs / "hpt")] == [2, 4]  # training lines kept apart


def test_report_writes_markdown_and_images(monitored_runs, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(monitored_runs / "scratch"), str(monitored_runs / "hpt"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "| scratch | - | mocov2 | scratch | 4 |" in text
    assert "| hpt | efficientnet-lite0-57934424.pth | mocov2 | full | 4 |" in text
    assert "## Speed-up" in text and "| hpt |" in text.split("## Speed-up")[1]
    hpt_row = next(line for line in text.splitlines() if line.startswith("| hpt |"))
    assert " ± " in hpt_row  # hpt eval's accuracy with its standard error
    compared = text.split("## Compared, image by image")[1]  # each run's exported step against its others
    assert "`hpt`, exported step" in compared and "`scratch`, exported step" in compared
    assert "95% CI" in compared
    for name in ("training.png", "accuracy_vs_steps.png", "speedup.png"):
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 400
    assert main(["report", str(tmp_path), "--out", str(out)]) == 2  # not a run: one clear error


def test_tensorboard_holds_every_scalar_of_the_run_and_the_view_grid(monitored_runs):
    """TensorBoard's own event reader finds, at their steps, the same numbers as metrics.jsonl (float32 in the
    event file: equal to 1e-6 relative), and the start's view grid as an image."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = monitored_runs / "hpt"
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    train = {f"train/{k}" for k in ("loss", "lr", "images_per_s", "data_wait_share", "embedding_spread")}
    monitor = {f"monitor/{k}" for k in ("knn_top1_k20", "rankme", "alpha_req")}
    assert train | monitor <= scalars and events.Tags()["images"] == ["views"]
    for group, lines in (("train", read_metrics(run)), ("monitor", read_monitor(run))):
        for key in ("loss", "lr") if group == "train" else ("knn_top1_k20", "rankme"):
            logged = {e.step: e.value for e in events.Scalars(f"{group}/{key}")}
            assert sorted(logged) == [line["step"] for line in lines]
            assert all(logged[line["step"]] == pytest.approx(line[key], rel=1e-6) for line in lines)
    with Image.open(run / "views.png") as grid:  # 8 images, 2 a row, each beside 2 views: 4 rows of 6 tiles
        assert grid.size == (6 * 98 + 2, 4 * 98 + 2)  # 32-px images shown at 96 px, 2-px borders


def test_other_loggers_and_none(digits, tmp_path, tiny_config):
    from hpt.train.loop import pretrain

    base = {"train.steps": 2, "train.log_every": 1, "monitor.label_free_sample": 0, "train.view_grid": 0}
    pretrain(tiny_config(digits["pretrain"], **base, **{"train.loggers": "csv"}), tmp_path / "csv")
    with open(tmp_path / "csv" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/loss"]) for r in rows] == [m["loss"] for m in read_metrics(tmp_path / "csv")]
    pretrain(tiny_config(digits["pretrain"], **base, **{"train.loggers": "none"}), tmp_path / "none")
    assert not (tmp_path / "none" / "tensorboard").exists() and not (tmp_path / "none" / "views.png").exists()


def test_mlflow_logs_every_scalar_to_the_runs_own_database(digits, tmp_path, tiny_config, monkeypatch):
    """Read back with MLflow's own client: one MLflow run named after the folder, `train/loss` at every logged
    step equal to metrics.jsonl's (MLflow stores float64: equal to 1e-12 relative)."""
    from mlflow.tracking import MlflowClient

    from hpt.train.loop import pretrain

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = {"train.steps": 2, "train.log_every": 1, "monitor.label_free_sample": 32, "monitor.every": 1}
    pretrain(tiny_config(digits["pretrain"], **overrides, **{"train.loggers": "mlflow"}), tmp_path / "ml")
    client = MlflowClient(f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("hpt").experiment_id])
    assert found.info.run_name == "ml"
    lines = read_metrics(tmp_path / "ml")
    history = {m.step: m.value for m in client.get_metric_history(found.info.run_id, "train/loss")}
    assert history == pytest.approx({line["step"]: line["loss"] for line in lines}, rel=1e-12)
    rankme = client.get_metric_history(found.info.run_id, "monitor/rankme")
    assert sorted(m.step for m in rankme) == [line["step"] for line in read_monitor(tmp_path / "ml")]


def _wandb_history(run_file):
    """The history records of an offline W&B run file: a LevelDB-style log (a 7-byte file header, 32 KiB blocks
    of chunks with a 7-byte header: crc32, length, type full/first/middle/last) of protobuf `Record`s."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, position, records, pending = run_file.read_bytes(), 7, [], b""
    while position + 7 <= len(data):
        left_in_block = 32768 - position % 32768
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left_in_block < 7 or (length == 0 and kind == 0):  # block padding
            position += left_in_block
            continue
        chunk, position = data[position + 7 : position + 7 + length], position + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(pending)
    history = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return history


def test_wandb_logs_every_scalar_offline(digits, tmp_path, tiny_config, monkeypatch):
    """W&B in offline mode (no account, no network): the run file, read back, holds `train/loss` at every logged
    step, equal to metrics.jsonl's (W&B stores the JSON of a float64: equal to 1e-12 relative)."""
    import json

    from hpt.train.loop import pretrain

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = {"train.steps": 2, "train.log_every": 1, "monitor.label_free_sample": 0}
    pretrain(tiny_config(digits["pretrain"], **overrides, **{"train.loggers": "wandb"}), tmp_path / "wb")
    (run_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    logged = {
        int(json.loads(h["trainer/global_step"])): json.loads(h["train/loss"])
        for h in _wandb_history(run_file)
        if "train/loss" in h
    }
    assert logged == pytest.approx({line["step"]: line["loss"] for line in read_metrics(tmp_path / "wb")}, rel=1e-12)


def test_report_draws_the_curves_of_a_run_without_labels(digits, tmp_path, tiny_config):
    from hpt.train.loop import pretrain

    config = tiny_config(digits["pretrain"], **{"train.steps": 4, "monitor.label_free_sample": 32, "monitor.every": 2})
    pretrain(config, tmp_path / "unlabelled")
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "unlabelled"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "![training curves](training.png)" in text and "accuracy_vs_steps" not in text
    with Image.open(out / "training.png") as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 800


def test_select_ranks_candidates_and_states_its_budget(monitored_runs, digits, lite0_file, tmp_path):
    from hpt.eval.select import describe, rank_candidates

    candidates = [str(lite0_file), str(monitored_runs / "scratch"), str(monitored_runs / "hpt")]
    result = rank_candidates(candidates, str(digits["train"]), "timm:tf_efficientnet_lite0", image_size=32)
    scores = [row["linear_val_top1"] for row in result["ranking"]]
    assert sorted(row["candidate"] for row in result["ranking"]) == sorted(candidates)
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert result["budget"]["forward_passes"] == 3 * 200 and result["budget"]["images"] == 200
    text = describe(result)
    assert text.splitlines()[1].startswith("   1") and "600 forward passes at 32 px" in text
    out = tmp_path / "select.json"
    assert (
        main(
            [
                "select",
                "--candidates",
                *candidates,
                "--data",
                str(digits["train"]),
                "--backbone",
                "timm:tf_efficientnet_lite0",
                "--image-size",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file()


def test_embed_writes_features_a_map_and_neighbours_for_base_and_run(monitored_runs, lite0_file, digits, tmp_path):
    """The real ImageNet base and a run on real digits: the feature files load, their rows are the backbone's
    features of the images in paths.txt, and the base's nearest neighbours share the query's digit far more
    often than chance (10%): the features, the order and the neighbour search are what they say."""
    import numpy as np

    from hpt.checkpoints.sources import load_backbone
    from hpt.data.files import find_images
    from hpt.eval.embed import nearest

    out = tmp_path / "embed"
    base, run = str(lite0_file), str(monitored_runs / "hpt")
    code = main(["embed", base, run, "--data", str(digits["test"]), "--out", str(out),
                 "--backbone", "timm:tf_efficientnet_lite0", "--queries", "4"])  # fmt: skip
    assert code == 0
    images = find_images(digits["test"])
    paths = (out / "paths.txt").read_text().splitlines()
    assert paths == [str(p) for p in images.paths]
    labels = (out / "labels.txt").read_text().splitlines()
    assert labels == [images.classes[label] for label in images.labels]
    features = {name: np.load(out / f"{name}.npy") for name in ("efficientnet-lite0-57934424", "hpt")}
    assert all(f.shape == (len(paths), 1280) and f.dtype == np.float32 for f in features.values())
    assert not np.array_equal(features["efficientnet-lite0-57934424"], features["hpt"])

    # one preprocessing: the base (which records none) at the run's 32 px, not 224; the run in its recorded mean/std
    import json

    used = json.loads((out / "preprocessing.json").read_text())
    assert used["efficientnet-lite0-57934424"]["image_size"] == used["hpt"]["image_size"] == 32
    assert used["hpt"]["source"] == "recorded by the model"
    assert used["efficientnet-lite0-57934424"]["source"].startswith("the data's")

    # the run's first row, computed here from the file alone: the run's own size (32 px) and recorded statistics
    from hpt.checkpoints.files import read_provenance
    from hpt.data.views import eval_view

    backbone, _ = load_backbone(run)
    recorded = read_provenance(monitored_runs / "hpt" / "backbone.safetensors")["data"]
    image = eval_view(32, recorded["mean"], recorded["std"])(Image.open(images.paths[0]).convert("RGB"))
    with torch.no_grad():
        first = backbone.eval()(image[None])[0].numpy()
    assert np.abs(first - features["hpt"][0]).max() <= 1e-4 * max(1.0, float(np.abs(first).max()))  # batch 1 vs 256

    found = nearest(torch.from_numpy(features["efficientnet-lite0-57934424"]), list(range(len(paths))), 8)
    same = (torch.tensor(images.labels)[found] == torch.tensor(images.labels)[:, None]).float().mean()
    assert same > 0.3, float(same)
    for name in ("map.png", "neighbours.png"):
        with Image.open(out / name) as picture:
            picture.verify()
            assert picture.format == "PNG" and picture.size[0] > 800  # two models side by side
