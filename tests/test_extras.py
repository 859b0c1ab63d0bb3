"""The light install: `pip install hpt` does the core job; every other feature is an extra, named in one line when
it is asked for without it.

An extra is made absent the way Python sees an uninstalled package: its module set to None in `sys.modules`, so
that `import` raises ImportError and `importlib.util.find_spec` finds nothing (a second environment without them
would cost minutes of torch install per test run). What runs is hpt's real code on real images.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dgsamples
import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from hpt.data.bands import band_count
from hpt.data.screen import problem_with
from hpt.extras import EXTRAS, installed
from tests.conftest import TINY_RUN, as_flags

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
CORE = {
    # The core job of issue 53: pretrain and export.
    *("torch", "torchvision", "timm", "safetensors", "numpy", "pillow", "pydantic", "pyyaml", "lightning-fabric"),
    "rich",
    # Data where it lives (fsspec URLs, WebDataset shards; 3 MB together) and the exact intervals every pick and
    # comparison carries (scipy): the core job too, kept on purpose.
    *("fsspec", "webdataset", "braceexpand", "scipy"),
}
DISTRIBUTION = {"pytorch_lightning": "pytorch-lightning"}
"""A module's distribution where the names differ."""


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()


def test_the_core_install_is_the_core_job_and_every_extra_is_declared():
    assert {_name(r) for r in PYPROJECT["project"]["dependencies"]} == CORE
    extras = PYPROJECT["project"]["optional-dependencies"]
    everything = extras["all"][0]  # "hpt[tensorboard,plots,...]"
    assert set(everything[everything.index("[") + 1 : -1].split(",")) == set(EXTRAS)
    for extra, modules in EXTRAS.items():
        assert {DISTRIBUTION.get(m, m) for m in modules} <= {_name(r) for r in extras[extra]}, extra
        assert installed(extra), f"the dev environment has every extra; {extra} is missing"


NEEDS_ITS_EXTRA = {"hpt.report.plots": "matplotlib"}
"""The only modules of hpt that import an extra when imported: each is imported only once the extra is found."""
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
from hpt.extras import EXTRAS
for module in (m for modules in EXTRAS.values() for m in modules):
    sys.modules[module] = None  # as if not installed
import hpt
for info in pkgutil.walk_packages(hpt.__path__, "hpt."):
    if info.name != "hpt.__main__":
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            print(info.name, exc.name)
"""


@pytest.mark.slow  # a fresh interpreter: ten seconds of imports
def test_no_module_imports_an_extra_unless_asked():
    """In a new process (in this one, a module imported earlier would hide its own import of an extra): every
    module of hpt imports with every extra absent, but the plots, which are imported only where matplotlib is."""
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE], capture_output=True, text=True, check=True)
    assert dict(line.split() for line in done.stdout.splitlines()) == NEEDS_ITS_EXTRA


@pytest.fixture
def without(monkeypatch):
    """`without(EXTRA, ...)`: those extras' modules as if not installed, for the rest of the test."""

    def block(*names: str) -> None:
        for name in names:
            for module in EXTRAS[name]:
                monkeypatch.setitem(sys.modules, module, None)
            assert not installed(name)

    return block


@pytest.mark.slow  # a real (tiny) run through the command line
def test_without_tensorboard_and_matplotlib_a_run_logs_to_csv_and_reports_its_tables(
    digits, tmp_path, hpt_here, without
):
    without("tensorboard", "plots")
    run = tmp_path / "run"
    flags = [*as_flags(TINY_RUN, "mocov2"), "--set=monitor.label_free_sample=0", "--set=train.log_every=1"]
    done = hpt_here("pretrain", "--data", digits["pretrain"], "--out", run, "--steps", 2, *flags)
    assert done.returncode == 0, done.stderr
    assert (
        "scalars: metrics.jsonl and csv/metrics.csv (TensorBoard is not installed: pip install 'hpt[tensorboard]')"
        in (" ".join(done.stderr.split()))
    )
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["loggers"] == ["csv"]  # recorded as chosen
    assert not (run / "tensorboard").exists()
    logged = (run / "csv" / "metrics.csv").read_text().splitlines()
    assert len(logged) == 1 + 2 and "train/loss" in logged[0]  # a header and both steps
    assert (run / "views.png").exists()  # drawn with torchvision and PIL, not matplotlib

    report = hpt_here("report", run, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Plots: not drawn, as matplotlib is not installed here (`pip install 'hpt[plots]'`)." in text
    assert "| run |" in text and not list((tmp_path / "report").glob("*.png"))

    embedded = hpt_here("embed", run, "--data", digits["test"], "--out", tmp_path / "embed")
    assert embedded.returncode == 2
    assert embedded.stderr.strip().splitlines() == [
        "hpt: error: hpt embed (its map.png and neighbours.png) needs matplotlib, not installed here: "
        "pip install 'hpt[plots]'"
    ]
    assert not (tmp_path / "embed").exists()  # refused before anything was written

    without("export")
    exported = hpt_here("export", run, "--format", "onnx")
    assert exported.returncode == 2 and exported.stderr.strip().splitlines() == [
        "hpt: error: --format onnx needs onnx, onnxscript, onnxruntime, not installed here: pip install 'hpt[export]'"
    ]
    assert not list(run.glob("*.onnx"))


def test_an_asked_for_logger_or_lora_without_its_extra_is_one_line(digits, lite0_file, tmp_path, hpt_here, without):
    """Said before the base is loaded or the data screened."""
    without("tensorboard", "lora")
    common = ["--data", digits["pretrain"], "--steps", 1, *as_flags(TINY_RUN, "mocov2")]
    for flags, line in [
        (["--logger", "tensorboard"], "train.loggers tensorboard needs tensorboard, not installed here: "
         "pip install 'hpt[tensorboard]'"),
        (["--init", "lora", "--base", lite0_file, "--set=model.backbone=timm:tf_efficientnet_lite0"],
         "--init lora needs peft, not installed here: pip install 'hpt[lora]'"),
    ]:  # fmt: skip
        out = tmp_path / str(flags[1])
        done = hpt_here("pretrain", *common, "--out", out, *flags)
        assert (done.returncode, done.stderr.strip().splitlines()) == (2, [f"hpt: error: {line}"])
        assert not out.exists()


def test_tiffs_without_tifffile_read_when_pil_reads_them_as_hpt_would_and_are_named_otherwise(tmp_path, without):
    """Without the `bands` extra an 8-bit RGB or a grey TIFF of any depth is an ordinary image (PIL reads them with
    it installed too); a WorldView scene (8 bands of
    uint16, band-sequential, as shipped) or a 16-bit RGB TIFF, which PIL would read wrong or not at all, is a
    screening reason that names the extra, never 'truncated or corrupt'."""
    photo = (np.arange(24 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 3)
    Image.fromarray(photo).save(tmp_path / "rgb.tif")
    Image.fromarray(photo[..., 0]).save(tmp_path / "grey.tif")
    tifffile.imwrite(tmp_path / "grey16.tif", photo[..., 0].astype(np.uint16) * 257)  # an X-ray's 16-bit grey
    high_bit = tmp_path / "rgb16.tif"
    tifffile.imwrite(high_bit, photo.astype(np.uint16) * 257, photometric="rgb")
    scene = sorted((Path(dgsamples.__file__).parent).glob("wv*_longmont_1k/*_MUL/*.TIF"))[0]
    without("bands")
    for ordinary in ("rgb.tif", "grey.tif", "grey16.tif"):
        assert band_count(tmp_path / ordinary) == 3 and problem_with(tmp_path / ordinary) is None
    named = "a TIFF of more than RGB, high-bit RGB or bands as pages, read through tifffile: pip install 'hpt[bands]'"
    assert problem_with(scene) == named and problem_with(high_bit) == named


def test_a_resume_where_the_default_logger_differs_goes_on():
    """Started where TensorBoard was installed (config.yaml: tensorboard), resumed where it is not (the default:
    csv): where the scalars also go is not what the run computes."""
    from hpt.config import load_config
    from hpt.train.run_dir import first_difference, in_effect

    then = load_config(None, {"train.loggers": "tensorboard"}).to_dict()
    now = load_config(None, {"train.loggers": "csv"}).to_dict()
    assert first_difference(*in_effect(then, now)) is None
    other = load_config(None, {"train.loggers": "csv", "train.steps": 7}).to_dict()
    assert first_difference(*in_effect(then, other)) == f"train.steps: {load_config().train.steps} then, 7 now"
