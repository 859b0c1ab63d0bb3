"""What every committed benchmark result says about where it came from: git revision, machine, date, and the
packages and device its numbers depend on (`hpt.core.environment`: another environment rounds elsewhere, and runs
of one config and seed then differ as two seeds do)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from hpt.core.environment import Environment, current


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def today() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def header(script: str, args: argparse.Namespace) -> dict[str, Any]:
    """The command that reproduces a study's results (every option spelled out), its date, git revision, machine
    and environment: the first keys of every results.json."""
    options = " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {' '.join(map(str, v)) if isinstance(v, list) else v}")
        for k, v in vars(args).items()
        # a flag: named when on; an empty list or an option not given (None): not
        if k not in ("out", "quick") and v is not False and v != [] and v is not None
    )
    command = f"benchmarks/{script} " + ("--quick " if getattr(args, "quick", False) else "") + options
    environment = current("cuda" if torch.cuda.is_available() else "cpu").to_dict()
    return {
        "command": command,
        "date": today(),
        "git": git_revision(),
        "machine": machine(),
        "environment": environment,
    }


def markdown_header(title: str, results: dict) -> list[str]:
    """The first lines of a study's results.md: its title and where its figures came from."""
    return [
        f"# {title}",
        "",
        f"Command: `{results['command']}`  ",
        *(
            [f"Environment: {Environment.from_dict(results['environment']).describe()}  "]
            if "environment" in results
            else []
        ),
        f"Date: {results['date']}, git {results['git']}, {results['machine']}",
        "",
    ]


def write_results_json(out: Path, results: dict) -> None:
    """`OUT/results.json` (the folder made if need be): every benchmark's machine-readable record."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
