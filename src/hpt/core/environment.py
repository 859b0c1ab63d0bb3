"""What a run computed on: the packages and the device that decide its float rounding.

A run resumes bit for bit and two runs of one config, seed and data agree to the last digit, but only in one
environment: another torch, timm, NumPy or Pillow, or another CPU or GPU, rounds somewhere else, and a training run
amplifies that difference step by step until it is as large as another seed's (hpt's own DINO study saw MoCo v2 runs
of one config move by up to 3.6 points when its virtual environment was rebuilt). So every file a run writes records
its environment, and a run resumed in another says so.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "torchvision", "timm", "numpy", "pillow", "lightning-fabric")
"""The distributions whose versions a run's numbers depend on (the models, the kernels, decoding and resizing)."""


@dataclass(frozen=True)
class Environment:
    python: str
    packages: dict[str, str] = field(default_factory=dict)
    """Each of `PACKAGES` with its version ("absent" where it is not installed)."""
    device: str = ""
    """The processor the run computed on: the GPU's name (with CUDA's and cuDNN's versions), or the CPU's model
    and torch's thread count."""
    installed: dict[str, str] = field(default_factory=dict)
    """Every distribution installed, with its version (empty in records before 0.8): which one moved, where two
    environments disagree (`hpt inspect A B`)."""

    def describe(self) -> str:
        packages = ", ".join(f"{name} {version}" for name, version in self.packages.items())
        return f"Python {self.python}, {packages}; {self.device}"

    def changes(self, now: Environment) -> list[str]:
        """What differs from this environment in `now`, in words (`torch 2.14.1 -> 2.15.0`); empty when nothing."""
        said = [] if self.python == now.python else [f"Python {self.python} -> {now.python}"]
        for name in sorted(set(self.packages) | set(now.packages)):
            before, after = self.packages.get(name, "absent"), now.packages.get(name, "absent")
            if before != after:
                said.append(f"{name} {before} -> {after}")
        if self.device != now.device:
            said.append(f"{self.device} -> {now.device}")
        if self.installed and now.installed:  # the others, by name, where both records have them
            for name in sorted((set(self.installed) | set(now.installed)) - set(self.packages) - set(now.packages)):
                before, after = self.installed.get(name, "absent"), now.installed.get(name, "absent")
                if before != after:
                    said.append(f"{name} {before} -> {after}")
        return said

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"python": self.python, "packages": dict(self.packages), "device": self.device}
        return record | ({"installed": dict(self.installed)} if self.installed else {})

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Environment:
        packages, installed = record.get("packages"), record.get("installed")
        return cls(
            str(record.get("python") or ""),
            {str(k): str(v) for k, v in packages.items()} if isinstance(packages, dict) else {},
            str(record.get("device") or ""),
            {str(k): str(v) for k, v in installed.items()} if isinstance(installed, dict) else {},
        )


def current(device: torch.device | str) -> Environment:
    """This process's environment, computing on `device`."""
    packages = {name: _version(name) for name in PACKAGES}
    return Environment(platform.python_version(), packages, _device(device), installed_distributions())


def installed_distributions() -> dict[str, str]:
    """Every distribution this interpreter can import from, by normalised name (`lightning-fabric`), sorted."""
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), distribution.version)
    return dict(sorted(found.items()))


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _device(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        cudnn = torch.backends.cudnn.version()
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, cuDNN {cudnn})"
    return f"{device.type}: {cpu_model()}, {torch.get_num_threads()} threads"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name: Linux's /proc/cpuinfo, else what the platform says, else its architecture."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
