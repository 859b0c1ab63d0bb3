"""The environment a run records: the package versions and the device its float rounding depends on."""

from __future__ import annotations

import importlib.metadata
import platform

import pytest
import torch

from hpt.core import environment
from hpt.core.environment import PACKAGES, Environment, cpu_model, current, installed_distributions


def test_the_current_environment_names_the_installed_versions_and_the_cpu():
    now = current("cpu")
    assert now.python == platform.python_version()
    assert set(now.packages) == set(PACKAGES)
    assert now.packages["torch"] == importlib.metadata.version("torch")
    assert now.packages["timm"] == importlib.metadata.version("timm")
    assert now.device == f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"
    assert Environment.from_dict(now.to_dict()) == now
    assert now.changes(current("cpu")) == []
    # every installed distribution, as pip names them: the ones hpt needs and the test tools
    assert {"torch", "lightning-fabric", "pytest", "scipy"} <= set(now.installed)
    assert now.installed["pytest"] == importlib.metadata.version("pytest")


def test_changes_name_each_package_and_the_device_that_differ():
    before = Environment("3.11.7", {"torch": "2.14.1", "timm": "1.0.31"}, "cpu: Xeon, 2 threads")
    after = Environment("3.11.7", {"torch": "2.14.1", "timm": "1.0.32", "numpy": "2.4.6"}, "cpu: EPYC, 2 threads")
    assert before.changes(after) == [
        "numpy absent -> 2.4.6",
        "timm 1.0.31 -> 1.0.32",
        "cpu: Xeon, 2 threads -> cpu: EPYC, 2 threads",
    ]
    assert "timm 1.0.31" in before.describe() and before.describe().endswith("; cpu: Xeon, 2 threads")


def test_changes_name_every_other_installed_package_where_both_records_have_them():
    before = Environment("3.11.7", {"torch": "2.14.1"}, "cpu", {"torch": "2.14.1", "sympy": "1.13", "six": "1.16"})
    after = Environment("3.11.7", {"torch": "2.14.1"}, "cpu", {"torch": "2.14.1", "sympy": "1.14", "rich": "14.0"})
    assert before.changes(after) == ["rich absent -> 14.0", "six 1.16 -> absent", "sympy 1.13 -> 1.14"]
    older = Environment("3.11.7", {"torch": "2.14.1"}, "cpu")  # a record of 0.7: its key packages only
    assert older.changes(after) == [] and Environment.from_dict(after.to_dict()) == after


def test_a_record_of_another_shape_reads_as_an_empty_environment_not_an_error():
    assert Environment.from_dict({"packages": ["torch"], "device": None}) == Environment("", {}, "")


def test_the_cpu_model_is_read_from_cpuinfo_or_the_platform(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Processor"
    assert cpu_model(tmp_path / "absent") == (platform.processor() or platform.machine() or "unknown")


@pytest.mark.slow  # two tiny real runs
def test_inspect_of_two_runs_names_the_packages_that_differ(digits, tmp_path, tiny_pretrain, hpt_here, monkeypatch):
    """The second run computed where one package (not one of the six a run's numbers are known to hang on) had
    another version: the environment reading is swapped for one with that version, the run itself is real."""
    assert tiny_pretrain(digits["pretrain"], tmp_path / "a", 1) == 0
    same = hpt_here("inspect", tmp_path / "a", tmp_path / "a")
    assert same.returncode == 0 and same.stdout.strip().endswith("environments: the same (every installed package)")
    real = installed_distributions()
    monkeypatch.setattr(environment, "installed_distributions", lambda: {**real, "sympy": "0.0.1"})
    assert tiny_pretrain(digits["pretrain"], tmp_path / "b", 1) == 0
    differ = hpt_here("inspect", tmp_path / "a", tmp_path / "b")
    assert differ.returncode == 0
    assert differ.stdout.strip().splitlines()[-1] == (
        f"environments differ, '{tmp_path / 'a'}' -> '{tmp_path / 'b'}': sympy {real['sympy']} -> 0.0.1"
    )
    three = hpt_here("inspect", tmp_path / "a", tmp_path / "b", tmp_path / "a")
    assert three.returncode == 2 and "hpt inspect takes one model, or two to compare; got 3" in three.stderr
