"""The environment a run records: the package versions and the device its float rounding depends on."""

from __future__ import annotations

import importlib.metadata
import platform

import torch

from hpt.core.environment import PACKAGES, Environment, cpu_model, current


def test_the_current_environment_names_the_installed_versions_and_the_cpu():
    now = current("cpu")
    assert now.python == platform.python_version()
    assert set(now.packages) == set(PACKAGES)
    assert now.packages["torch"] == importlib.metadata.version("torch")
    assert now.packages["timm"] == importlib.metadata.version("timm")
    assert now.device == f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"
    assert Environment.from_dict(now.to_dict()) == now
    assert now.changes(current("cpu")) == []


def test_changes_name_each_package_and_the_device_that_differ():
    before = Environment("3.11.7", {"torch": "2.14.1", "timm": "1.0.31"}, "cpu: Xeon, 2 threads")
    after = Environment("3.11.7", {"torch": "2.14.1", "timm": "1.0.32", "numpy": "2.4.6"}, "cpu: EPYC, 2 threads")
    assert before.changes(after) == [
        "numpy absent -> 2.4.6",
        "timm 1.0.31 -> 1.0.32",
        "cpu: Xeon, 2 threads -> cpu: EPYC, 2 threads",
    ]
    assert "timm 1.0.31" in before.describe() and before.describe().endswith("; cpu: Xeon, 2 threads")


def test_a_record_of_another_shape_reads_as_an_empty_environment_not_an_error():
    assert Environment.from_dict({"packages": ["torch"], "device": None}) == Environment("", {}, "")


def test_the_cpu_model_is_read_from_cpuinfo_or_the_platform(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Processor"
    assert cpu_model(tmp_path / "absent") == (platform.processor() or platform.machine() or "unknown")
