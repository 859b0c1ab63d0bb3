"""Pretraining on 12-bit scans does as well as on their 8-bit originals: the intensity window at work.

The target's images (Fashion-MNIST, else MNIST-5k) are written twice: as 8-bit PNGs and re-encoded at 12 bits
(values 0-4095 in 16-bit PNGs, as X-ray and CT scans are stored), unlabelled and labelled splits alike. MoCo v2
continues from the real ImageNet EfficientNet-Lite0 on each, with no flag (`data.intensity: auto`), for
`--steps` steps and several seeds; the monitor's linear probe and kNN (on the same kind of images) score the
base at step 0 and the run at its end. A third run per seed reads the 12-bit copies as hpt 0.1 did
(`full-range`: the 16-bit type's range onto 0-255, about 17 grey levels left); the window gives them all 256
back.

    .venv/bin/python benchmarks/high_bit.py --out benchmarks/results/high_bit
    .venv/bin/python benchmarks/high_bit.py --quick --out /tmp/high_bit          # the suite's
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
from PIL import Image
from provenance import header, markdown_header, write_results_json
from study import available, scored_run, study_arguments, target_data

from hpt.checkpoints.files import read_provenance


def reencode_12_bit(source: Path, target: Path) -> Path:
    """Every PNG under `source` as a 16-bit PNG holding round(value x 4095 / 255) under `target`, once."""
    if target.is_dir():
        return target
    for path in sorted(source.rglob("*.png")):
        grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(grey * 4095 / 255).astype(np.uint16)).save(out)
    return target


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> None:
    parser = study_arguments(__doc__)
    parser.add_argument("--target", default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--unlabelled", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds, args.unlabelled, args.per_class, args.batch_size = 2, [0], 64, 4, 16
    target = (available([args.target]) or ["mnist-5k"])[0]
    originals = target_data(target, args.out, args.unlabelled, args.per_class)
    copies = reencode_12_bit(originals, args.out / "data" / f"{target}-12-bit")
    settings = {
        "data.image_size": args.image_size,
        "data.num_workers": args.workers,
        "train.batch_size": args.batch_size,
        "mocov2.queue_size": 4096 if not args.quick else 64,
    }
    variants = {  # name: (images, data.intensity)
        "8-bit": (originals, "auto"),
        "12-bit": (copies, "auto"),
        "12-bit, full-range (hpt 0.1)": (copies, "full-range"),
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in args.seeds:
        for name, (data, intensity) in variants.items():
            run = args.out / "runs" / f"{name.split(',')[0]}-{intensity}-seed{seed}"
            extra = {**settings, "train.seed": seed, "data.intensity": intensity}
            result = scored_run(data, str(data / "pretrain"), run, "full", args.steps, args.steps, extra)
            window = read_provenance(run / "backbone.safetensors")["data"]["intensity"]
            runs[name].append({"seed": seed, **result, "intensity": window})
    table = {
        name: {
            moment: {label: summary([r["curve"][index][label] for r in results]) for label in ("linear", "kNN")}
            for moment, index in (("base", 0), ("end", -1))
        }
        for name, results in runs.items()
    }
    results = {**header("high_bit.py", args), "target": target, "runs": runs, "table": table}
    write_results_json(args.out, results)
    lines = markdown_header("Pretraining on 12-bit scans and on their 8-bit originals", results)
    lines += [
        f"{target}, {args.unlabelled} unlabelled images, {args.per_class} labelled per class to fit and to score, "
        f"{args.image_size} px, batch {args.batch_size}, MoCo v2 from the ImageNet Lite0 for {args.steps} steps; "
        f"mean and sd over seeds {', '.join(map(str, args.seeds))}. The 12-bit runs' window: "
        f"{runs['12-bit'][0]['intensity']['source']}, [{runs['12-bit'][0]['intensity']['low']:g}, "
        f"{runs['12-bit'][0]['intensity']['high']:g}].",
        "",
        "| images | base: linear | base: kNN | after pretraining: linear | after pretraining: kNN |",
        "|---|---|---|---|---|",
    ]
    for name, cells in table.items():
        row = [
            f"{cells[m][label]['mean']:.1%} ± {cells[m][label]['sd']:.1%}"
            for m in ("base", "end")
            for label in ("linear", "kNN")
        ]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
