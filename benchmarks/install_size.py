"""What `pip install hpt` and each extra cost on disk (issue 53's light install), measured, not guessed.

A fresh virtual environment gets the pinned torch and torchvision (PyPI's CUDA build, as `make setup` installs
them), then hpt's core; its packages are sized from their own file records (`importlib.metadata`), the torch
build (torch, torchvision, triton, the nvidia-* CUDA libraries) apart from the rest. Each extra is then resolved
next to that core (`pip install --dry-run --report`) and exactly what it would add is installed into a folder of
its own (`--no-deps --target`) and sized with `du`: an extra's cost over the core, its shared dependencies
counted in each extra that brings them.

    .venv/bin/python benchmarks/install_size.py --out benchmarks/results/install_size      # ~8 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from provenance import header, markdown_header

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ["tensorboard", "plots", "bands", "dicom", "export", "lora", "mlflow", "wandb", "all"]
TORCH = ("torch==2.14.1", "torchvision==0.29.1")
SIZES = """
import importlib.metadata as md, json, os
sizes = {}
for d in md.distributions():
    total = 0
    for f in d.files or []:
        try:
            total += os.path.getsize(f.locate())
        except OSError:
            pass
    sizes[d.metadata["Name"].lower()] = total
print(json.dumps(sizes))
"""


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def torch_build(name: str) -> bool:
    return name in ("torch", "torchvision", "triton") or name.startswith(("nvidia-", "cuda-"))


def core(venv: Path) -> dict:
    shutil.rmtree(venv, ignore_errors=True)
    run(sys.executable, "-m", "venv", str(venv))
    pip = str(venv / "bin" / "pip")
    run(pip, "install", "-q", *TORCH)
    run(pip, "install", "-q", str(ROOT))
    sizes = {k: v for k, v in json.loads(run(str(venv / "bin" / "python"), "-c", SIZES)).items()
             if k not in ("pip", "setuptools")}  # fmt: skip
    torch_mb = sum(v for k, v in sizes.items() if torch_build(k)) / 1e6
    rest = {k: round(v / 1e6, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]) if not torch_build(k)}
    return {"total_mb": round(torch_mb + sum(rest.values())), "torch_build_mb": round(torch_mb), "rest": rest}


def extra(venv: Path, name: str, scratch: Path) -> dict:
    pip = str(venv / "bin" / "pip")
    report = scratch / f"{name}.json"
    run(pip, "install", "-q", "--dry-run", "--report", str(report), f"{ROOT}[{name}]")
    resolved = [i["metadata"] for i in json.loads(report.read_text())["install"]]
    chosen = sorted(f"{m['name']}=={m['version']}" for m in resolved if m["name"].lower() != "hpt")
    target = scratch / name
    shutil.rmtree(target, ignore_errors=True)
    run(pip, "install", "-q", "--no-deps", "--target", str(target), *chosen)
    mb = int(run("du", "-sm", str(target)).split()[0])
    return {"mb": mb, "packages": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hpt-install-size"), help="the venv and folders")
    parser.add_argument("--keep", action="store_true", help="keep --scratch (an environment: ~8 GB) afterwards")
    args = parser.parse_args()
    venv = args.scratch / "venv"
    result = {**header("install_size.py", args), "core": core(venv)}
    result["extras"] = {name: extra(venv, name, args.scratch) for name in EXTRAS}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    c = result["core"]
    lines = [
        *markdown_header("Installed size of hpt's core and of each extra", result),
        "| install | MB | packages |",
        "|---|---|---|",
        f"| core (torch build: {c['torch_build_mb']:,} MB; the rest {round(sum(c['rest'].values())):,} MB) | "
        f"{c['total_mb']:,} | {len(c['rest'])} besides the torch build |",
        *(f"| [{n}] | {e['mb']:,} | {' '.join(e['packages'])} |" for n, e in result["extras"].items()),
        "",
        "The core's largest packages besides the torch build (MB): "
        + ", ".join(f"{k} {v}" for k, v in list(c["rest"].items())[:8]) + ".",
    ]  # fmt: skip
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep:
        shutil.rmtree(args.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
