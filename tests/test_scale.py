"""A million files without waiting, checked at a size a test can hold: the listing is `sorted(rglob)`'s, file for
file (symbolic links, FIFOs, odd names, unreadable folders); the names are kept compactly and survive any bytes;
a warm start stats no image a second time; screening's cache keys come from the listing; data.json reads back,
older ones too, and names what changed. The times and memory at 10k-1M files are benchmarks/scale.py's."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hpt.data import walk as walking
from hpt.data.files import IMAGE_SUFFIXES, ImageList, find_images
from hpt.data.fingerprint import DataFingerprint
from hpt.data.paths import PathList


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tricky(tmp_path) -> Path:
    """A folder whose names sort differently as strings and as paths ('a/...' before 'a-c/...' before 'a.png/...'),
    with upper-case suffixes, a nested folder, a text file, a link to a folder (not followed, as rglob does not), a
    dangling link and a FIFO with image names (listed, for screening to name), and files at the top."""
    root = tmp_path / "data"
    for i, rel in enumerate(["b/x.png", "a/y.PNG", "a-c/z.png", "a/sub/w.png", "a.png/q.png", "top.png", "a/0.png"]):
        _png(root / rel, i)
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("not an image")
    os.symlink(root / "a", root / "again")
    os.symlink(root / "a", root / "folder-link.png")
    os.symlink(root / "gone.png", root / "dangling.png")
    os.mkfifo(root / "a" / "pipe.png")
    return root


def test_the_listing_is_sorted_rglobs_file_for_file(tricky):
    listing = walking.walk(tricky, IMAGE_SUFFIXES)
    expected = sorted(p for p in tricky.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    assert list(listing.paths) == expected
    sizes = {Path(name).name: int(size) for name, size in zip(listing.paths.names(), listing.stats[:, 0])}
    assert (
        sizes["dangling.png"] == -1 and sizes["pipe.png"] == 0 and sizes["x.png"] == (tricky / "b/x.png").stat().st_size
    )
    for name, row in zip(listing.paths.names(), listing.stats.tolist()):
        if Path(name).name not in ("dangling.png",):
            st = os.stat(name)
            assert row == [st.st_size, st.st_mtime_ns, st.st_mode, st.st_dev, st.st_ino]


def test_labels_come_from_the_first_level_folders(tmp_path):
    for i, rel in enumerate(["cats/1.png", "cats/deep/2.png", "dogs/3.png", "cats-and-dogs/4.png"]):
        _png(tmp_path / "labelled" / rel, i)
    (tmp_path / "labelled" / "empty").mkdir()  # a folder without images is no class
    listing = walking.walk(tmp_path / "labelled", IMAGE_SUFFIXES)
    assert listing.folders == ["cats", "cats-and-dogs", "dogs"]
    classes = [listing.folders[i] for i in listing.tops.tolist()]
    assert classes == [name.split("/labelled/")[1].split("/")[0] for name in listing.paths.names()]
    assert classes == ["cats", "cats", "cats-and-dogs", "dogs"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: chmod cannot make one unreadable")
def test_a_folder_the_job_cannot_read_is_left_out(tricky):
    (tricky / "b").chmod(0)
    try:
        names = [Path(name).name for name in walking.walk(tricky, IMAGE_SUFFIXES).paths.names()]
    finally:
        (tricky / "b").chmod(0o755)
    assert "x.png" not in names and "y.PNG" in names


def test_names_are_kept_compactly_and_any_bytes_survive(tmp_path):
    odd = [tmp_path / "new\nline.png", tmp_path / os.fsdecode(b"latin-\xe9.png"), tmp_path / "space d.png"]
    paths = PathList.of(odd * 1000)
    assert list(paths[:3]) == odd and paths[-1] == odd[-1] and len(paths) == 3000
    assert pickle.loads(pickle.dumps(paths)) == paths and paths.take([2, 0]) == PathList.of([odd[2], odd[0]])
    assert paths.nbytes() / len(paths) < len(os.fsencode(odd[0])) + 9  # the name's bytes and one offset
    assert [os.fsencode(p) for p in paths.take(range(3))] == [os.fsencode(p) for p in odd]
    with pytest.raises(IndexError):
        paths.name(3000)


def test_a_warm_start_stats_no_image_again(tmp_path, monkeypatch):
    """Listed once (the walk's DirEntry.stat), then screening's keys and the data fingerprint read that listing:
    on a screened folder, `os.stat` is called for none of its images (counted by wrapping the real call)."""
    for i in range(30):
        _png(tmp_path / "data" / f"{i // 10}" / f"{i:02}.png", i)
    find_images(tmp_path / "data")  # screened: the cache knows every file
    real, seen = os.stat, []

    def counting(path, *args, **kwargs):
        if str(path).endswith(".png"):
            seen.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    images = find_images(tmp_path / "data")
    fingerprint = DataFingerprint.of(images, seed=0)
    assert len(images) == 30 and seen == []
    assert fingerprint.sizes.tolist() == [real(p).st_size for p in images.paths]


def test_a_list_file_is_stated_once_in_threads(tmp_path):
    paths = [_png(tmp_path / f"{i}.png", i) for i in range(5)]
    (tmp_path / "list.txt").write_text("".join(f"{p}\n" for p in reversed(paths)))
    images = find_images(tmp_path / "list.txt")
    assert list(images.paths) == list(reversed(paths)) and images.stats is not None
    assert images.stats[:, 0].tolist() == [p.stat().st_size for p in reversed(paths)]
    # a sample is drawn in sorted order, however the list was ordered: the same as the folder's
    assert images.sample(3, seed=1) == find_images(tmp_path, "data").subset(range(5)).sample(3, seed=1)


def test_the_fingerprint_reads_back_and_names_what_changed(tmp_path):
    for i in range(20):
        _png(tmp_path / "data" / f"{i:02}.png", i)
    then = DataFingerprint.of(find_images(tmp_path / "data"))
    again = DataFingerprint.from_dict(json.loads(json.dumps(then.to_dict())))
    assert again == then and again.digest() == then.digest() and not then.changes_to(again)
    # data.json as hpt 0.6 and 0.7 wrote it still reads, and compares with today's
    older = {
        "files": [[name, int(s), int(t)] for name, s, t in zip(then.paths.names(), then.sizes, then.mtimes)],
        "sample_sha256": then.sample,
    }
    assert not DataFingerprint.from_dict(older).changes_to(then)
    _png(tmp_path / "data" / "new.png", 99)
    (tmp_path / "data" / "03.png").unlink()
    _png(tmp_path / "data" / "07.png", 200)  # rewritten: another size or time
    os.utime(tmp_path / "data" / "07.png", ns=(1, 1))
    changes = then.changes_to(DataFingerprint.of(find_images(tmp_path / "data")))
    assert [Path(p).name for p in changes.added] == ["new.png"] and [Path(p).name for p in changes.removed] == [
        "03.png"
    ]
    assert "07.png" in {Path(p).name for p in changes.changed}


def test_an_image_list_given_paths_keeps_them_as_a_path_list(tmp_path):
    listed = ImageList([tmp_path / "a.png", tmp_path / "b.png"], [0, 1], ["x", "y"])
    assert isinstance(listed.paths, PathList) and listed.item(1) == (tmp_path / "b.png", None)
    assert listed.subset([1]).paths == PathList.of([tmp_path / "b.png"]) and listed.subset([1]).labels == [1]


def test_a_dicom_header_is_read_once_for_screening_and_listing(tmp_path, monkeypatch):
    """Screening reads each DICOM file's header and keeps it; listing its frames reads none again (counted by
    wrapping the real reader); a second start reads none at all."""
    from pydicom.data import get_testdata_file

    from hpt.data import dicom

    for i in range(3):
        shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / f"ct{i}.dcm")
        shutil.copy(get_testdata_file("emri_small.dcm"), tmp_path / f"mr{i}.dcm")  # 10 frames each
    real, read = dicom.read_header, []

    def counting(path):
        read.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(dicom, "read_header", counting)
    images = find_images(tmp_path)
    assert len(images) == 3 + 30 and sorted(read) == sorted(p.name for p in tmp_path.glob("*.dcm"))
    read.clear()
    assert len(find_images(tmp_path)) == 33 and read == []


def test_a_large_jpeg_is_decoded_at_the_scale_its_crops_allow(tmp_path):
    """A real 1411 x 1411 photo (scikit-image's retina) saved as JPEG: MoCo v2's crops to 224 px (at least 0.2 of
    the area) allow half its sides, and no less; at 32 px an eighth. The decoded image stays within one JPEG block
    (8 pixels at the full scale) of the full decode reduced the same way, and PNGs are never reduced."""
    from skimage import data as photos

    from hpt.data.decode import Decoding
    from hpt.data.views import draft_of, multi_crop, pretrain_view, two_views

    photo = photos.retina()
    Image.fromarray(photo).save(tmp_path / "retina.jpg", quality=95)
    Image.fromarray(photo).save(tmp_path / "retina.png")
    moco = two_views(pretrain_view("full", 224, (0.5,) * 3, (0.25,) * 3, (0.2, 1.0)))
    assert draft_of(moco) == Decoding.draft_for(224, 0.2) == 579  # 224 / sqrt(0.75 x 0.2)
    half = Decoding(draft=draft_of(moco))(tmp_path / "retina.jpg")
    assert half.size == (706, 706) and Decoding(draft=Decoding.draft_for(32, 0.2))(tmp_path / "retina.jpg").size == (
        177,
        177,
    )
    assert Decoding(draft=579)(tmp_path / "retina.png").size == (1411, 1411)
    full = Decoding()(tmp_path / "retina.jpg").resize((706, 706), Image.Resampling.BOX)
    assert np.abs(np.asarray(half, dtype=int) - np.asarray(full, dtype=int)).mean() < 3  # the same picture
    assert [v.shape for v in moco(half)] == [(3, 224, 224)] * 2
    dino = multi_crop(lambda size=224, scale=(0.2, 1.0): pretrain_view("full", size, (0.5,) * 3, (0.25,) * 3, scale),
                      6, 96, 0.4)  # fmt: skip
    assert draft_of(dino) == max(Decoding.draft_for(224, 0.4), Decoding.draft_for(96, 0.05))


def test_the_loader_count_is_the_cores_there_are_and_a_resume_may_change_it():
    from hpt.config import available_cores, load_config
    from hpt.train.run_dir import first_difference, in_effect

    assert load_config().data.num_workers == available_cores() == len(os.sched_getaffinity(0))
    then, now = load_config(None, {"data.num_workers": 8}).to_dict(), load_config(None, {"data.num_workers": 16})
    assert first_difference(*in_effect(then, now.to_dict())) is None
    other = load_config(None, {"data.num_workers": 16, "data.image_size": 64}).to_dict()
    assert first_difference(*in_effect(then, other)) == "data.image_size: 224 then, 64 now"
