"""The lock (`requirements/lock.txt`, what `make setup` installs) is in step with pyproject.toml: every dependency
pyproject names, the core's, every extra's and the test tools', is pinned there at a version its range admits, with
hashes, and torch is the build the Makefile and CI pin. A dependency changed without `make lock` fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]


def pinned() -> dict[str, str]:
    """name -> version of every `NAME==VERSION \\` line, each followed by its hashes."""
    text = (ROOT / "requirements" / "lock.txt").read_text()
    found = {}
    for match in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^ \\\n]+) \\\n\s+--hash=sha256:[0-9a-f]{64}", text, re.M):
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def test_every_dependency_of_pyproject_is_pinned_in_the_lock_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = pinned()
    named = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    for requirement in map(Requirement, named):
        name = canonicalize_name(requirement.name)
        if name == "hpt":  # the extras that gather others ("hpt[all,demo]")
            continue
        assert name in lock, f"{name} is not in requirements/lock.txt: run `make lock`"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"requirements/lock.txt pins {name}=={lock[name]}, outside pyproject's {requirement}: run `make lock`"
        )


def test_the_lock_pins_the_torch_ci_runs():
    lock = pinned()
    makefile = (ROOT / "Makefile").read_text()
    constraints = (ROOT / "requirements" / "constraints.txt").read_text()
    for name in ("torch", "torchvision"):
        assert f"{name}=={lock[name]}" in makefile and f"{name}=={lock[name]}\n" in constraints
