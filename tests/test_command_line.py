"""A command line that explains itself: the version, help generated from the config's own docstrings, the
resolved config, the committed configuration reference, what a run resolved (learning rate, precision,
devices) said and recorded, and progress and a log that a job without a terminal keeps."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import hpt
from hpt.cli import main
from hpt.config import PretrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _hpt(*args: str) -> subprocess.CompletedProcess:
    """`hpt ARGS` with a wide terminal: argparse wraps help at hyphens otherwise."""
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "hpt", *args], capture_output=True, text=True, timeout=120, env=env)


def test_version_as_a_flag_and_as_a_command():
    for args in (["--version"], ["version"]):
        done = _hpt(*args)
        assert done.returncode == 0 and done.stdout.strip() == f"hpt {hpt.__version__}"
    assert "version" in _hpt("--help").stdout


def test_every_flag_says_what_it_does_its_choices_and_its_default():
    text = " ".join(_hpt("pretrain", "--help").stdout.split())
    # from the field docstrings, so --help and the reference cannot drift apart
    assert "--method METHOD The self-supervised method" in text
    assert "[method; one of mocov2, simclr, byol, swav, dino, distill; default: mocov2]" in text
    assert "--teacher TEACHER The frozen model distilled from (`--teacher`)" in text
    assert "[model.init; one of full, scratch, bn-only, norm-only, partial, lora; default: None]" in text
    assert "one of auto, 32-true, 32, bf16-mixed, 16-mixed" in text and "one of tensorboard, csv, mlflow, wandb" in text
    assert "[data.path; required, unless --config or the folder's config.yaml (--resume) names it]" in text
    assert "--out OUT run folder to write (required, except with --print-config)" in text
    assert "hpt pretrain: error: the following arguments are required: --out" in _hpt("pretrain", "--data", ".").stderr


def test_print_config_prints_what_the_yaml_flags_and_set_resolve_to(tmp_path, capsys):
    diff = tmp_path / "run.yaml"
    diff.write_text("train:\n  steps: 7\n")
    argv = ["pretrain", "--print-config", "--config", str(diff), "--method", "byol", "--set", "optim.lr=0.2"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["steps"] == 7 and printed["method"] == "byol" and printed["optim"]["lr"] == 0.2
    assert PretrainConfig.model_validate(printed).to_dict() == printed  # a config file that loads as it is
    assert not list(tmp_path.glob("run*/"))  # nothing was run


def test_the_configuration_reference_is_committed_as_generated():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    committed = (ROOT / "docs" / "reference.md").read_text()
    assert committed == hooks.reference_page(), "docs/reference.md is stale: run .venv/bin/python docs/hooks.py"
    assert "| `data.nan_fill` |" in committed


@pytest.mark.slow  # two real runs in processes of their own
def test_a_run_without_a_terminal_says_what_it_resolved_and_keeps_its_log(digits, tmp_path):
    """A real run as a job runs it (no TTY): the resolved learning rate is said and recorded (config.yaml keeps
    `optim.lr: null`, as asked); plain progress lines carry the rate, loss and time left; train.log keeps what
    the console said and is appended to by a resume."""
    run = tmp_path / "run"
    flags = [
        "pretrain", "--data", str(digits["pretrain"]), "--out", str(run), "--backbone", "timm:test_resnet",
        "--steps", "4", "--batch-size", "8", "--image-size", "16", "--workers", "0",
        "--set", "mocov2.queue_size=32", "--set", "monitor.label_free_sample=0",
    ]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "hpt", *flags], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    # mocov2's own rate per 256 images, scaled to the batch of 8: 0.03 x 8 / 256
    assert "learning rate 0.0009375 (mocov2.lr 0.03 x batch 8 / 256), cosine to 0; precision 32-true" in said
    assert "1 process(es) on cpu, 8 images each per step" in said
    assert "step 4/4" in said and "images/s" in said and "left" in said
    resolved = json.loads((run / "backbone.json").read_text())["resolved"]
    assert resolved["lr"] == 0.03 * 8 / 256 and resolved["lr_rule"] == "mocov2.lr 0.03 x batch 8 / 256"
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] is None
    assert (
        "| learning rate | 0.0009375 (mocov2.lr 0.03 x batch 8 / 256, cosine to 0) |" in (run / "README.md").read_text()
    )
    log = (run / "train.log").read_text()
    assert "learning rate 0.0009375" in log and "step 4/4" in log and "done: 4 steps" in log

    again = subprocess.run(
        [sys.executable, "-m", "hpt", *flags, "--resume"], capture_output=True, text=True, timeout=300
    )  # finished: said, nothing touched (train.log included)
    assert again.returncode == 0 and (run / "train.log").read_text() == log


def _example(function) -> str:
    """The code of a docstring's `Example::` block, dedented."""
    doc = function.__doc__ or ""
    assert "Example::" in doc, f"{function.__name__} has no example"
    block = doc.split("Example::", 1)[1]
    return textwrap.dedent("\n".join(line for line in block.splitlines() if line.strip() or line == ""))


def test_the_python_api_is_listed_and_each_function_is_documented_with_an_example():
    api = ["load_config", "pretrain", "evaluate", "export_model", "run_chain", "register_backbone", "lineage"]
    assert set(api) <= set(dir(hpt)) and not [name for name in dir(hpt) if name in ("Any", "import_module")]
    for name in api:
        function = getattr(hpt, name)
        assert "Args:" in (function.__doc__ or "") or name == "register_backbone", name
        compile(_example(function), f"hpt.{name} example", "exec")  # every example is valid Python
    # the two that need no data or run folder run as written
    for name in ("load_config", "register_backbone"):
        exec(_example(getattr(hpt, name)), {})


def test_a_hub_name_that_is_not_cached_fails_at_once_without_a_network(tmp_path, monkeypatch):
    """No network here: the probe of the hub's host is replaced (the network alone is mocked), the caches
    are empty folders; each uncached name is one line naming its cache folder, not a minute of retries."""
    import socket

    import huggingface_hub.constants

    from hpt.backbones import create_backbone
    from hpt.backbones.hub_cache import PROXY_VARIABLES
    from hpt.errors import HptError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in (*PROXY_VARIABLES, "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    probed = []

    def unreachable(address, timeout=None):
        probed.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    for name, cache in (("timm:resnet18", tmp_path / "hf"), ("torchvision:resnet18", tmp_path / "torch")):
        with pytest.raises(HptError) as error:
            create_backbone(name, pretrained=True)
        said = str(error.value)
        assert said.startswith(f"'{name}': its pretrained weights are not in the cache folder {cache}")
        assert "cannot be reached (Name or service not known)" in said
    assert [host for host, _ in probed] == ["huggingface.co", "download.pytorch.org"]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # told to stay offline: not even a probe
    with pytest.raises(HptError, match=r"and HF_HUB_OFFLINE=1 allows no download"):
        create_backbone("timm:resnet18", pretrained=True)
    assert len(probed) == 2
