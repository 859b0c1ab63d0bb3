"""A million files without waiting: how long `hpt pretrain` takes from its start to its first step, and how much
memory its main process holds, for folders of 10k, 100k and 1M real images, cold (nothing cached) and warm (the
same folder again), and what a `--resume` spends checking the data.

The folder: Fashion-MNIST's 70,000 real PNGs (Debian's `dataset-fashion-mnist`), hard-linked as often as it takes
to reach each count, 1,000 a sub-folder (a hard link is a file of its own to every reader: its own path, listed,
stat-ed and screened like any other; the bytes are shared, so the page cache holds them as it would on a warm disk).
The run: the tiny timm test ResNet at 32 px, batch 64, one step, two loader workers, no monitor; a fresh
`$HPT_CACHE_DIR` for each count's cold start. Time to step 1 is read off the console's "step 1/1" line; memory is
the main process's peak resident set (`getrusage`), less a run on 1,000 files (imports, the model) and divided
by the files. `--dicom` also times screening folders of real DICOM files (pydicom-data's single-frame ones,
hard-linked the same way).

    .venv/bin/python benchmarks/scale.py --counts 10000 100000 1000000 --dicom 100000 --out benchmarks/results/scale
    .venv/bin/python benchmarks/scale.py --quick --out /tmp/scale                     # the suite's: 1,500 files
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from provenance import header, markdown_header, write_results_json

from hpt.data import builtin

SUB_FOLDER = 1000
SMALL = 1000
"""Files of the run that measures what memory a run holds whatever its data (imports, the model, the loader)."""
RUN = (
    "--backbone timm:test_resnet --steps 1 --batch-size 64 --image-size 32 --workers 2 "
    "--set monitor.label_free_sample=0 --set mocov2.queue_size=128 --set train.view_grid=0 --set train.loggers=none"
)
PROBE = (
    "import resource, sys\n"
    "from hpt.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(f'MAXRSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def real_images() -> np.ndarray:
    if builtin.fashion_mnist_available():
        return np.concatenate([builtin.fashion_mnist("train")[0], builtin.fashion_mnist("test")[0]])
    return builtin.mnist_5k()[0]


def linked_folder(sources: list[Path], count: int, folder: Path) -> Path:
    """`count` files under `folder`, 1,000 a sub-folder, each a hard link to one of `sources` in turn."""
    for i in range(count):
        sub = folder / f"{i // SUB_FOLDER:04}"
        if i % SUB_FOLDER == 0:
            sub.mkdir(parents=True)
        source = sources[i % len(sources)]
        os.link(source, sub / f"{i:07}{source.suffix}")
    return folder


def timed_run(data: Path, out: Path, cache: Path, extra: str = "") -> dict[str, float]:
    """One `hpt pretrain` in a fresh process: seconds to its first step (and in all), its peak memory."""
    args = ["pretrain", "--data", str(data), "--out", str(out), *RUN.split(), *extra.split()]
    env = {**os.environ, "HPT_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    assert process.stderr is not None
    first_step, said, rss = None, [], 0
    for line in process.stderr:
        said.append(line)
        if first_step is None and re.search(r"step 1/1", line):
            first_step = time.perf_counter() - started
        if line.startswith("MAXRSS_KB"):
            rss = int(line.split()[1])
    if process.wait() != 0 or first_step is None:
        raise SystemExit(f"hpt pretrain failed ({process.returncode}):\n{''.join(said)[-3000:]}")
    return {
        "to_step_1_s": round(first_step, 2),
        "total_s": round(time.perf_counter() - started, 2),
        "rss_mb": rss / 1024,
    }


def resume_check(run: Path, cache: Path) -> float:
    """Seconds a `--resume` of `run` spends on its plan (listing, screening, statistics, the data check against
    its data.json) in a fresh process, imports left out."""
    code = (
        "import sys, time; from pathlib import Path; from hpt.config import load_config; "
        "from hpt.train.plan import plan_run; run = Path(sys.argv[1]); t = time.perf_counter(); "
        "plan_run(load_config(run / 'config.yaml'), run, overwrite=False, resume=True); "
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(run)], capture_output=True, text=True,
        env={**os.environ, "HPT_CACHE_DIR": str(cache)}, check=True,
    )  # fmt: skip
    return round(float(done.stdout.split()[-1]), 2)


def screened(data: Path, cache: Path) -> float:
    """Seconds `find_images` takes on `data` in a fresh process (screening every file), cache at `cache`."""
    code = "import sys, time; from hpt.data.files import find_images; t = time.perf_counter(); "
    code += "n = len(find_images(sys.argv[1])); print(n, time.perf_counter() - t)"
    done = subprocess.run(
        [sys.executable, "-c", code, str(data)], capture_output=True, text=True,
        env={**os.environ, "HPT_CACHE_DIR": str(cache)}, check=True,
    )  # fmt: skip
    return round(float(done.stdout.split()[-1]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10000, 100000, 1000000])
    parser.add_argument("--dicom", type=int, nargs="*", default=[], help="DICOM folder sizes to screen")
    parser.add_argument("--scratch", type=Path, help="where the folders are made (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="1,500 files: checks the script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.quick:
        args.counts, args.dicom = [1500], [50]
    results = {**header("scale.py", args), "runs": {}, "dicom": {}}
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch_dir:
        scratch = Path(scratch_dir)
        sources = []
        for i, image in enumerate(real_images()[: max(args.counts)]):
            sources.append(scratch / "sources" / f"{i:05}.png")
            sources[-1].parent.mkdir(exist_ok=True)
            Image.fromarray(image).save(sources[-1])
        small = linked_folder(sources, SMALL, scratch / "small")
        baseline = timed_run(small, scratch / "run-small", scratch / "cache-small")
        results["baseline"] = baseline
        for count in args.counts:
            data = linked_folder(sources, count, scratch / f"data-{count}")
            cache, run = scratch / f"cache-{count}", scratch / f"run-{count}"
            cold = timed_run(data, run, cache, "--overwrite")
            warm = timed_run(data, run, cache, "--overwrite")
            resumed = resume_check(run, cache)
            per_file = {k: round((v["rss_mb"] - baseline["rss_mb"]) * 1024 / count, 3) for k, v in
                        (("cold", cold), ("warm", warm))}  # fmt: skip
            results["runs"][str(count)] = {"cold": cold, "warm": warm, "resume": resumed, "kb_per_file": per_file}
            print(count, results["runs"][str(count)], flush=True)
            shutil.rmtree(data)
        dicoms = [p for p in Path(_dicom_folder()).glob("*.dcm") if _single_frame(p)]
        for count in args.dicom:
            data = linked_folder(dicoms, count, scratch / f"dicom-{count}")
            results["dicom"][str(count)] = {"cold_s": screened(data, scratch / f"cache-dicom-{count}")}
            print("dicom", count, results["dicom"][str(count)], flush=True)
            shutil.rmtree(data)
    write_results_json(args.out, results)
    lines = markdown_header("A million files: time to the first step and memory", results)
    lines += [
        f"`hpt pretrain` to its first step on folders of real PNGs (hard links of Fashion-MNIST's 70,000), {RUN}.",
        f"Memory: the main process's peak, less the {SMALL:,}-file run's ({baseline['rss_mb']:.0f} MB), per file.",
        "",
        "| files | cold: to step 1 (s) | KB a file | warm: to step 1 (s) | KB a file | --resume: its plan (s) |",
        "|---|---|---|---|---|---|",
    ]
    for count, run in results["runs"].items():
        lines.append(
            f"| {int(count):,} | {run['cold']['to_step_1_s']:.1f} | {run['kb_per_file']['cold']:.2f} | "
            f"{run['warm']['to_step_1_s']:.1f} | {run['kb_per_file']['warm']:.2f} | {run['resume']:.1f} |"
        )
    if results["dicom"]:
        lines += ["", "| DICOM files | screened, cold (s) |", "|---|---|"]
        lines += [f"| {int(n):,} | {r['cold_s']:.1f} |" for n, r in results["dicom"].items()]
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


def _dicom_folder() -> str:
    from pydicom.data import get_testdata_file

    return str(Path(get_testdata_file("JPEG-LL.dcm")).parent)


def _single_frame(path: Path) -> bool:
    from hpt.data.dicom import DicomProblem, read_header

    try:
        return read_header(path).frames == 1
    except DicomProblem:
        return False


if __name__ == "__main__":
    main()
