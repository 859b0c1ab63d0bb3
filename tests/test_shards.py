"""WebDataset tar shards, written by webdataset's own writer from real digits, streamed: each sample once an
epoch across every stream, a run killed mid-epoch resumes bit for bit (two loader processes, so the order they
take turns in is checked too), shards served over HTTP by a real local server (only the host is local), a sample
that does not decode listed and passed over, a rewritten shard seen by --resume, and one line for what is wrong."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest
import torch
import webdataset

from hpt.core.run_files import SKIPPED
from hpt.data import builtin
from hpt.data.decode import Decoding
from hpt.data.screen import read_skipped
from hpt.data.shards import ShardStream, find_shards, is_sharded, samples
from hpt.errors import HptError

SHARDS, PER_SHARD = 4, 48
PATTERN = "train-{000000..000003}.tar"


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory) -> Path:
    """4 shards of 48 real digits each (a PNG and a class a sample), as `webdataset.TarWriter` writes them."""
    root = tmp_path_factory.mktemp("shards")
    pngs = sorted(builtin.write_splits("mnist-5k", root / "digits", unlabelled=SHARDS * PER_SHARD, per_class=1)[
        "pretrain"
    ].glob("*.png"))  # fmt: skip
    for s in range(SHARDS):
        with webdataset.TarWriter(str(root / f"train-{s:06}.tar")) as shard:
            for i, png in enumerate(pngs[s * PER_SHARD : (s + 1) * PER_SHARD]):
                shard.write({"__key__": f"s{s}-{i:03}", "png": png.read_bytes(), "cls": str(i % 10).encode()})
    return root


@pytest.fixture(scope="module")
def served(shard_folder):
    """The shard folder behind a real HTTP server on this machine."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shard_folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_every_sample_once_an_epoch_across_the_streams(shard_folder):
    """Two training processes with two loader processes each (four streams): in each epoch every stream reads
    shards of its own, so together they read every sample once; the next epoch deals the shards anew."""
    shards = find_shards(str(shard_folder / PATTERN))
    assert len(shards) == SHARDS and all(size > 0 for size in shards.sizes)
    keys = {key for url in shards.urls for key, _, _ in samples(url)}
    assert len(keys) == SHARDS * PER_SHARD
    stream = ShardStream(shards, lambda pixels: pixels, Decoding(), 0, shard_folder / "skipped.jsonl", buffer=16)
    dealt = {}
    for epoch in (0, 1):
        read = [[key for _, key, _, _ in stream._epoch(s, 4, epoch)] for s in range(4)]
        assert sorted(k for keys_of in read for k in keys_of) == sorted(keys)
        dealt[epoch] = [keys_of[0].split("-")[0] for keys_of in read]  # the shard each stream began with
    assert dealt[0] != dealt[1]  # each epoch a new permutation of the shards


def test_a_run_killed_mid_epoch_resumes_bit_for_bit(shard_folder, tiny_config, stopped_and_resumed):
    """Stopped after step 3 (of 8, batch 8 from 4 x 48 samples: mid-epoch) and resumed: every tensor of the
    checkpoint, the stream's positions among them, equals the run that never stopped."""
    config = tiny_config(
        shard_folder / PATTERN,
        **{"train.steps": 8, "data.num_workers": 2, "data.shuffle_buffer": 16, "monitor.label_free_sample": 0},
    )
    whole, resumed = stopped_and_resumed(config)
    assert "data.stream" in whole and whole["data.stream"].shape == (1, 2, 2)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.slow  # a real run through the command line, shards over HTTP
def test_shards_over_http_train_and_a_rewritten_one_is_a_change(shard_folder, served, tmp_path, tiny_pretrain, capsys):
    run = tmp_path / "run"
    assert tiny_pretrain(f"{served}/{PATTERN}", run, 3, "--set=data.num_workers=2") == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "4 shards, streamed (measured on a sample of 192 of their images)" in said
    record = json.loads((run / "backbone.json").read_text())
    assert record["data"]["path"] == f"{served}/{PATTERN}" and record["data"]["images"] is None
    assert is_sharded(f"{served}/{PATTERN}")
    original = (shard_folder / "train-000003.tar").read_bytes()
    try:  # a shard rewritten on the server (a sample added): --resume names the change
        with webdataset.TarWriter(str(shard_folder / "train-000003.tar")) as shard:
            for key, suffix, data in [*samples(f"{served}/train-000000.tar")][: PER_SHARD + 1]:
                shard.write({"__key__": key, suffix: data})
        from hpt.config import load_config
        from hpt.train.plan import plan_run

        with pytest.raises(HptError, match="the data changed since .* 1 changed"):
            plan_run(load_config(run / "config.yaml"), run, overwrite=False, resume=True)
    finally:
        (shard_folder / "train-000003.tar").write_bytes(original)
    missing = tiny_pretrain(f"{served}/train-{{000000..000004}}.tar", tmp_path / "other", 1)
    assert missing == 2 and "shard 'http://127.0.0.1" in capsys.readouterr().err


def test_a_sample_that_does_not_decode_is_listed_and_passed_over(tmp_path, shard_folder, tiny_pretrain):
    """A shard whose third sample's PNG is cut in half: listed in skipped.jsonl as SHARD#KEY, the run goes on."""
    folder = tmp_path / "broken"
    folder.mkdir()
    members = list(samples(str(shard_folder / "train-000000.tar")))
    with webdataset.TarWriter(str(folder / "train-000000.tar")) as shard:
        for i, (key, suffix, data) in enumerate(members):
            shard.write({"__key__": key, suffix: data[: len(data) // 2] if i == 2 else data})
    with webdataset.TarWriter(str(folder / "train-000001.tar")) as shard:
        shard.write({"__key__": "only-a-label", "cls": b"3"})
    run = tmp_path / "run"
    assert tiny_pretrain(folder, run, 8, "--set=data.max_bad_fraction=0.1") == 0
    skipped = read_skipped(run / SKIPPED)
    broken = f"{folder / 'train-000000.tar'}#{members[2][0]}"
    assert skipped[broken].startswith("cannot be decoded") and "only-a-label" in " ".join(skipped)


def test_what_is_wrong_with_shards_is_one_line(tmp_path, shard_folder):
    (tmp_path / "train-000000.tar").write_bytes((shard_folder / "train-000000.tar").read_bytes())
    with pytest.raises(HptError, match=r"shard '.*train-000001.tar' does not exist"):
        find_shards(str(tmp_path / "train-{000000..000001}.tar"))
    assert is_sharded(str(tmp_path)) and is_sharded("https://host/x/train-{0..9}.tar")  # a folder of shards too
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "0.png").write_bytes(next((shard_folder / "digits" / "pretrain").glob("*.png")).read_bytes())
    (tmp_path / "images" / "beside.tar").write_bytes(b"")
    assert not is_sharded(str(tmp_path / "images"))  # images with an archive beside them: a folder of images


@pytest.mark.slow  # two processes over gloo
def test_two_processes_stream_their_own_shards_and_both_positions_are_kept(shard_folder, tmp_path):
    """Each process streams shards of its own; the checkpoint keeps both processes' loader positions (gathered),
    each a whole number of per-process batches into the first epoch."""
    import subprocess
    import sys

    from hpt.checkpoints.files import read_tensors

    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "hpt", "pretrain", "--data", str(shard_folder / PATTERN), "--out", str(run),
         "--backbone", "timm:test_resnet", "--devices", "2", "--steps", "3", "--batch-size", "8", "--image-size",
         "16", "--workers", "1", "--set", "mocov2.queue_size=32", "--set", "monitor.label_free_sample=0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    state = read_tensors(run / "checkpoint.safetensors")[0]["data.stream"]
    assert state.tolist() == [[[0, 12]], [[0, 12]]]  # 3 steps of 4 images a process, one loader process each


def test_a_url_with_credentials_is_refused_before_anything_is_written(tmp_path):
    for url in ("https://me:secret@example.org/train-{0..1}.tar", "https://example.org/train-0.tar?Signature=abc"):
        with pytest.raises(HptError, match="carries a user, a password or a query") as refused:
            find_shards(url)
        assert "secret" not in str(refused.value) and "abc" not in str(refused.value)


def test_a_folder_of_image_files_behind_a_url_streams_file_by_file(served, shard_folder, tmp_path, tiny_pretrain):
    """The real digits' PNGs, as a folder on the HTTP server: listed once (sizes from the listing), streamed one
    file a sample, the data fingerprint over the files."""
    run = tmp_path / "run"
    assert tiny_pretrain(f"{served}/digits/pretrain/", run, 2) == 0
    shards = find_shards(f"{served}/digits/pretrain/")
    assert shards.files and len(shards) == SHARDS * PER_SHARD and all(size > 0 for size in shards.sizes)
    record = json.loads((run / "backbone.json").read_text())
    assert record["data"]["images"] is None and record["data"]["fingerprint"]


def test_a_list_of_image_urls_streams_and_a_wrong_row_is_one_line(served, shard_folder, tmp_path, tiny_pretrain):
    """A local list naming the real digits' PNGs by URL on the HTTP server (with a label column, as a labelled list
    has, not read: pretraining has no labels), and a CSV of them: one listing of the folder they share, streamed one
    file a sample.
    A row that does not exist, a local path among URLs, two file systems: one line naming the row."""
    pngs = sorted((shard_folder / "digits" / "pretrain").glob("*.png"))[:40]
    listed = tmp_path / "train.txt"
    listed.write_text("# images of the bucket\n" + "".join(f"{served}/digits/pretrain/{p.name} 3\n" for p in pngs))
    assert is_sharded(str(listed))
    shards = find_shards(str(listed))
    assert shards.files and len(shards) == 40 and [u.rsplit("/", 1)[1] for u in shards.urls] == [p.name for p in pngs]
    assert list(shards.sizes) == [p.stat().st_size for p in pngs]
    assert tiny_pretrain(listed, tmp_path / "run", 2) == 0
    table = tmp_path / "train.csv"  # a table's path column, its other columns not read
    table.write_text("path,label\n" + "".join(f"{served}/digits/pretrain/{p.name},3\n" for p in pngs))
    assert is_sharded(str(table)) and find_shards(str(table)) == shards
    for rows, said in (
        (f"{served}/digits/pretrain/{pngs[0].name}\n{served}/digits/pretrain/nope.png\n", "nope.png' does not exist"),
        (f"{served}/digits/pretrain/{pngs[0].name}\n{pngs[1]}\n", f"line 2: '{pngs[1]}' is not a URL"),
        (f"{served}/digits/pretrain/{pngs[0].name}\ns3://bucket/x.png\n", "mixes http, s3"),
    ):
        listed.write_text(rows)
        with pytest.raises(HptError, match="^") as refused:
            find_shards(str(listed))
        assert said in str(refused.value) and "\n" not in str(refused.value)
