import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hpt.core.run_files import REFUSED, SKIPPED
from hpt.data.cache import cache_dir
from hpt.data.dataset import ImageDataset
from hpt.data.decode import load_rgb
from hpt.data.files import find_images
from hpt.data.locations import ARCHIVE_REASON
from hpt.data.order import SeededItems, StepBatches
from hpt.data.screen import ScreenPolicy, TooManyUnusable, problem_with, read_skipped
from hpt.data.stats import pixel_stats
from hpt.data.views import POLICIES, eval_view, pretrain_view, two_views
from hpt.errors import HptError


def test_every_mode_decodes_to_the_same_rgb(tmp_path):
    grey = np.array([[0, 64], [128, 255]], dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I;16")
    sixteen.save(tmp_path / "sixteen.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "rgb.jpg", quality=100)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "rgb.webp", lossless=True)
    Image.fromarray(grey, "L").save(tmp_path / "grey.tif")
    Image.fromarray(grey, "L").save(tmp_path / "grey.bmp")
    expected = np.stack([grey] * 3, -1)
    for name in ("grey.png", "sixteen.png", "rgba.png", "rgb.webp", "grey.tif", "grey.bmp"):
        image = load_rgb(tmp_path / name)
        assert image.mode == "RGB", name
        assert np.array_equal(np.asarray(image), expected), name
    assert np.abs(np.asarray(load_rgb(tmp_path / "rgb.jpg")).astype(int) - expected).max() <= 3


def test_transparent_pixels_become_black(tmp_path):
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = [200, 100, 50, 255]
    rgba[0, 1] = [200, 100, 50, 0]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.asarray(load_rgb(tmp_path / "a.png")).tolist() == [[[200, 100, 50], [0, 0, 0]]]


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)


def test_labels_come_from_sub_folders_recursively(tmp_path):
    _png(tmp_path / "cat" / "a.png")
    _png(tmp_path / "cat" / "deeper" / "b.png")
    _png(tmp_path / "dog" / "c.PNG")
    (tmp_path / "notes.txt").write_text("not an image, and not an image extension either")
    images = find_images(tmp_path)
    assert images.classes == ["cat", "dog"]
    assert sorted(zip([p.name for p in images.paths], images.labels)) == [("a.png", 0), ("b.png", 0), ("c.PNG", 1)]


def test_loose_images_mean_no_labels(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "cat" / "b.png")
    images = find_images(tmp_path)
    assert images.labels is None and len(images) == 2


def test_file_lists_with_and_without_labels(tmp_path):
    _png(tmp_path / "img" / "a.png")
    _png(tmp_path / "img" / "b.png")
    (tmp_path / "labelled.txt").write_text("# comment\nimg/a.png dog\n\nimg/b.png cat\n")
    images = find_images(tmp_path / "labelled.txt")
    assert images.classes == ["cat", "dog"] and images.labels == [1, 0]
    (tmp_path / "plain.txt").write_text(f"{tmp_path / 'img' / 'a.png'}\nimg/b.png\n")
    assert find_images(tmp_path / "plain.txt").labels is None
    (tmp_path / "mixed.txt").write_text("img/a.png dog\nimg/b.png\n")
    with pytest.raises(HptError, match="label on every line or on none"):
        find_images(tmp_path / "mixed.txt")


def test_csv_lists_with_a_header(tmp_path):
    """`path,label` and `path` CSVs (any column order of rows, quoted paths with commas) beside the .txt list."""
    _png(tmp_path / "img" / "a, first.png")
    _png(tmp_path / "img" / "b.png")
    (tmp_path / "labelled.csv").write_text('path,label\n"img/a, first.png",dog\nimg/b.png,cat\n')
    images = find_images(tmp_path / "labelled.csv")
    assert images.classes == ["cat", "dog"] and images.labels == [1, 0]
    assert images.paths == [tmp_path / "img" / "a, first.png", tmp_path / "img" / "b.png"]
    (tmp_path / "plain.csv").write_text(f"PATH\n{tmp_path / 'img' / 'b.png'}\nimg/a, first.png\n")
    with pytest.raises(HptError, match="plain.csv' line 3: expected a path"):
        find_images(tmp_path / "plain.csv")  # an unquoted comma makes two fields
    (tmp_path / "plain.csv").write_text(f'PATH\n{tmp_path / "img" / "b.png"}\n"img/a, first.png"\n')
    plain = find_images(tmp_path / "plain.csv")
    assert plain.labels is None and plain.multilabel is None and len(plain) == 2
    (tmp_path / "missing.csv").write_text("path,label\nimg/a, first.png,dog\nimg/b.png,\n")
    with pytest.raises(HptError, match="missing.csv' line 2: expected a path and a label"):
        find_images(tmp_path / "missing.csv")
    (tmp_path / "noheader.csv").write_text("img/b.png,cat\n")
    with pytest.raises(HptError, match="expected a header 'path', 'path,label'"):
        find_images(tmp_path / "noheader.csv")


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "holds no images"),
        (lambda root: (root.mkdir(), (root / "x.png").write_text("hello")), "x.png': not an image"),
        (lambda root: (root.parent.mkdir(exist_ok=True), root.write_text("x")), "expected a folder of images"),
    ],
)
def test_bad_data_is_named(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(HptError, match=message) as info:
        find_images(root)
    assert "\n" not in str(info.value)


def test_pixel_stats_are_exact_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_CACHE_DIR", str(tmp_path / "cache"))
    _png(tmp_path / "img" / "a.png", 0)
    _png(tmp_path / "img" / "b.png", 255)
    images = find_images(tmp_path / "img")
    stats = pixel_stats(images, image_size=8, sample=10)
    assert stats.mean == pytest.approx((0.5,) * 3) and stats.std == pytest.approx((0.5,) * 3)
    cached = list((cache_dir() / "stats").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["mean"] == pytest.approx([0.5] * 3)
    cached[0].write_text(json.dumps({"mean": [0.1] * 3, "std": [0.2] * 3}))
    assert pixel_stats(images, image_size=8, sample=10).mean == (0.1,) * 3  # read back, not recomputed
    _png(tmp_path / "img" / "b.png", 128)  # a changed file is a new cache key
    assert pixel_stats(images, image_size=8, sample=10).mean != (0.1,) * 3


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_view_policy_makes_normalised_crops(policy):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    first, second = two_views(pretrain_view(policy, 32, (0.5,) * 3, (0.25,) * 3))(image)
    assert first.shape == second.shape == (3, 32, 32) and first.dtype == torch.float32
    assert not torch.equal(first, second)
    assert eval_view(32, (0.5,) * 3, (0.25,) * 3)(image).shape == (3, 32, 32)


def test_crop_only_keeps_colours_and_full_changes_them():
    image = Image.new("RGB", (32, 32), (200, 40, 40))
    torch.manual_seed(0)
    crops = [pretrain_view("crop-only", 16, (0.0,) * 3, (1.0,) * 3)(image) for _ in range(20)]
    assert all(torch.allclose(c[:, 8, 8], torch.tensor([200, 40, 40]) / 255, atol=1e-6) for c in crops)
    jittered = [pretrain_view("full", 16, (0.0,) * 3, (1.0,) * 3)(image) for _ in range(20)]
    assert any(not torch.allclose(c[:, 8, 8], torch.tensor([200, 40, 40]) / 255, atol=1e-2) for c in jittered)


def test_a_step_sees_the_same_images_and_views_however_it_is_reached(digits):
    images = find_images(digits["pretrain"])
    dataset = SeededItems(ImageDataset(images, two_views(pretrain_view("full", 16, (0.5,) * 3, (0.25,) * 3))))

    def batches(start_step: int, workers: int, count: int) -> list[torch.Tensor]:
        loader = DataLoader(
            dataset, batch_sampler=StepBatches(len(images), 24, seed=7, start_step=start_step), num_workers=workers
        )
        taken = []
        for views, _ in loader:
            taken.append(torch.cat(views))
            if len(taken) == count:
                return taken

    per_epoch = len(images) // 24
    from_zero = batches(0, 0, per_epoch + 3)
    torch.manual_seed(123)  # the caller's RNG plays no part
    resumed = batches(per_epoch - 2, 2, 5)  # across an epoch boundary, in two worker processes
    for a, b in zip(from_zero[per_epoch - 2 :], resumed, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(from_zero[0], from_zero[per_epoch])  # a new epoch is a new order and new views


def test_each_epoch_is_a_permutation_and_seeds_differ():
    sampler = StepBatches(num_images=10, batch_size=3, seed=0)
    steps = iter(sampler)
    epoch = [next(steps) for _ in range(3)]  # 3 batches of 3; one image per epoch left out
    indices = [i for batch in epoch for i, _ in batch]
    assert len(set(indices)) == 9 and set(indices) <= set(range(10))
    seeds = [s for batch in epoch for _, s in batch]
    assert len(set(seeds)) == 9
    assert sampler.epoch_order(0).tolist() != sampler.epoch_order(1).tolist()


def test_each_kind_of_bad_file_is_named_with_its_reason(tmp_path, bad_images):
    expected = bad_images(tmp_path / "bad")
    _png(tmp_path / "bad" / "fine.png")
    found = {path.name: problem_with(path) for path in (tmp_path / "bad").iterdir()}
    assert found.pop("fine.png") is None
    assert found.keys() == expected.keys()
    for name, reason in expected.items():
        assert found[name].startswith(reason), (name, found[name])
    assert problem_with(tmp_path / "bad" / "fine.png", max_image_pixels=32) == (
        "over the limit of 32 pixels, data.max_image_pixels (8 x 8 pixels)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: chmod cannot make one unreadable")
def test_an_unreadable_file_is_named(tmp_path):
    _png(tmp_path / "locked.png")
    (tmp_path / "locked.png").chmod(0)
    assert problem_with(tmp_path / "locked.png") == "permission denied"


def test_screening_skips_a_few_bad_files_and_refuses_a_folder_of_them(tmp_path, bad_images):
    for i in range(40):
        _png(tmp_path / "data" / f"{i:02}.png", i)
    expected = bad_images(tmp_path / "data")
    with pytest.raises(TooManyUnusable, match=r"5 of 45 files cannot be used, more than data.max_bad_fraction \(5%\)"):
        find_images(tmp_path / "data")
    images = find_images(tmp_path / "data", policy=ScreenPolicy(max_bad_fraction=0.2))
    assert len(images) == 40 and sorted(p.name for p in images.skipped) == sorted(expected)


def test_screening_remembers_each_file_so_one_new_file_is_screened_alone(tmp_path, monkeypatch):
    """The per-file cache (`screen.sqlite`): a second pass decodes nothing, a new file is decoded alone, and a
    file that changed (cut short) is screened again and now named. Counted by wrapping the real screening."""
    from hpt.data import screen as screening

    for i in range(30):
        _png(tmp_path / "data" / f"{i:02}.png", i)
    real, decoded = screening.problem_with, []

    def counting(path, *args):
        decoded.append(path.name)
        return real(path, *args)

    monkeypatch.setattr(screening, "problem_with", counting)
    assert len(find_images(tmp_path / "data")) == 30 and len(decoded) == 30
    decoded.clear()
    assert len(find_images(tmp_path / "data")) == 30 and decoded == []
    _png(tmp_path / "data" / "new.png", 99)
    assert len(find_images(tmp_path / "data")) == 31 and decoded == ["new.png"]
    decoded.clear()
    whole = (tmp_path / "data" / "05.png").read_bytes()
    (tmp_path / "data" / "05.png").write_bytes(whole[: len(whole) // 2])
    images = find_images(tmp_path / "data", policy=ScreenPolicy(max_bad_fraction=0.1))
    assert decoded == ["05.png"] and [p.name for p in images.skipped] == ["05.png"]
    assert (cache_dir() / "screen.sqlite").is_file()


def test_a_refused_start_lists_every_unusable_file_and_loses_nothing_written(
    digits, bad_images, tmp_path, tiny_pretrain, capsys
):
    """5 bad files among 261, over a 1% limit: the start is refused with the reasons counted, and every file is
    listed with its reason in the new run folder, which stays free for the next start (no --overwrite needed). A
    refused start into a finished run lists them beside it and changes none of the run's files."""
    data = tmp_path / "data"
    shutil.copytree(digits["pretrain"], data)
    expected = bad_images(data)
    run = tmp_path / "run"
    capsys.readouterr()
    assert tiny_pretrain(data, run, 1, "--set=data.max_bad_fraction=0.01") == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "5 of 261 files cannot be used" in said and "2 x truncated or corrupt; " in said
    assert f"every one with its reason in {run / SKIPPED}" in " ".join(said.split())
    listed = {Path(p).name: reason for p, reason in read_skipped(run / SKIPPED).items()}
    assert listed.keys() == expected.keys() and all(listed[n].startswith(r) for n, r in expected.items())

    assert tiny_pretrain(data, run, 1) == 0  # the folder held only the list: a start that accepts them goes on
    finished = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert tiny_pretrain(data, run, 1, "--set=data.max_bad_fraction=0.01", "--overwrite") == 2
    assert f"every one with its reason in {run / REFUSED}" in " ".join(capsys.readouterr().err.split())
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != REFUSED} == finished
    assert read_skipped(run / REFUSED) == read_skipped(run / SKIPPED)  # the same five, the run's list kept


def test_data_that_is_not_on_a_local_disk_is_one_line_that_says_what_to_do(digits, tmp_path, hpt_here):
    """A bucket URL names the fsspec package it needs (s3fs is not installed here); a signed URL is refused and its
    credentials and query never reach the console, in a list of URLs too (a list of URLs streams: test_shards.py);
    a labelled list of URLs is refused, saying how to bring the images to a local disk; `file://` is a local path."""
    data = ["pretrain", "--out", tmp_path / "run", "--backbone", "timm:test_resnet", "--steps", "1", "--data"]
    bucket = hpt_here(*data, "s3://bucket/xrays")
    assert bucket.returncode == 2 and bucket.stderr.count("\n") == 1
    assert "data 's3://bucket/xrays': reading s3:// needs s3fs (pip install s3fs)" in bucket.stderr
    signed = hpt_here(*data, "https://me:secret@example.org/x/?X-Amz-Signature=abc123")
    assert signed.returncode == 2 and "'https://example.org/x/...': the URL carries a user" in signed.stderr
    assert "secret" not in signed.stderr and "abc123" not in signed.stderr
    listed = tmp_path / "list.txt"
    listed.write_text("https://me:secret@example.org/0.png\n")
    in_list = hpt_here(*data, listed)
    assert in_list.returncode == 2 and "line 1: 'https://example.org/0.png...' carries a user" in in_list.stderr
    assert "secret" not in in_list.stderr and not (tmp_path / "run").exists()
    listed.write_text("https://example.org/0.png 0\nhttps://example.org/1.png 1\n")
    labelled = hpt_here(*data, digits["pretrain"], "--monitor-train", listed, "--monitor-test", digits["test"])
    assert labelled.returncode == 2 and "lists 'https://example.org/0.png' is on https://" in labelled.stderr
    assert "labelled images are read from a local disk" in labelled.stderr and not (tmp_path / "run").exists()
    assert len(find_images(f"file://{digits['test']}")) == len(find_images(digits["test"]))


def test_an_archive_is_never_passed_over_in_silence(digits, tmp_path, hpt_here):
    """A zip of real digits given as --data: one line; a WebDataset shard (webdataset's own writer) beside loose
    images: listed among the skipped files with the reason (a .tar alone, or a folder of them, streams:
    test_shards.py)."""
    import webdataset

    folder = tmp_path / "data"
    shutil.copytree(digits["pretrain"], folder)
    with webdataset.TarWriter(str(tmp_path / "shard-000000.tar")) as shard:
        for i, png in enumerate(sorted(folder.glob("*.png"))[:16]):
            shard.write({"__key__": f"{i:06}", "png": png.read_bytes()})
    shutil.make_archive(str(tmp_path / "export"), "zip", folder)
    refused = hpt_here("pretrain", "--data", tmp_path / "export.zip", "--out", tmp_path / "run")
    assert refused.returncode == 2 and "is an archive hpt does not stream" in refused.stderr
    (tmp_path / "only").mkdir()
    shutil.copy(tmp_path / "shard-000000.tar", tmp_path / "only")
    with pytest.raises(HptError, match="holds no images, only 1 archives"):
        find_images(tmp_path / "only")  # as images; as --data, a folder of shards streams
    shutil.copy(tmp_path / "shard-000000.tar", folder / "shard-000000.tar")
    images = find_images(folder)
    assert len(images) == 256 and {p.name: r for p, r in images.skipped.items()} == {"shard-000000.tar": ARCHIVE_REASON}
