"""A model card (`README.md`) in the Hugging Face format: YAML front matter (library, base model, tags) and
the recipe, the data, the evaluations (step 0, the exported step and the last, each test score with its standard
error, and the exported step against the others, paired) and the lineage, all read from the exported file's
provenance, so that the run folder can be uploaded to a hub as it is: local files and folders are named by
their name (and sha256), never by their path on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import yaml

from hpt.backbones import split_name
from hpt.eval.uncertainty import SE, Difference


def model_card(provenance: dict[str, Any], lineage: str) -> str:
    config, data = provenance["config"], provenance["data"]
    backbone = provenance["backbone"]
    family, model = split_name(backbone)
    front: dict[str, Any] = {
        "library_name": "timm" if family == "timm" else "pytorch",
        "pipeline_tag": "image-feature-extraction",
        "tags": ["hpt", "self-supervised-learning", "image-feature-extraction", provenance["method"], family],
    }
    hub_id = _base_hub_id(provenance.get("base") or {})
    if hub_id:
        front["base_model"] = hub_id
    base = _public_base(provenance.get("base") or {})
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {backbone}, {provenance['method']} continued on {_folder(data.get('path')) or 'the data below'}",
        "",
        f"A headless {backbone} (pooled features, no classifier) made by "
        f"hpt {provenance.get('hpt_version')}: self-supervised pretraining ("
        f"{provenance['method']}, init `{provenance['init']}`) continued from `{base}`.",
        "",
        "## Recipe",
        "",
        *_table(
            [
                ("method", provenance["method"]),
                ("initialisation", provenance["init"]),
                ("steps", provenance["steps"]),
                ("batch size", config["train"]["batch_size"]),
                ("learning rate", _learning_rate(provenance)),
                ("image size", config["data"]["image_size"]),
                ("views", config["views"]["policy"]),
                ("wall time", f"{provenance['wall_time_s']:.0f} s"),
                ("backbone of step", (provenance.get("selected") or {}).get("step", provenance["steps"])),
            ]
        ),
        "",
        "## Data",
        "",
        *_table(
            [
                ("images", data["images"]),
                ("held out for the monitor", data["held_out"]),
                ("channels", data.get("channels", 3)),
                ("intensity window", _window(data.get("intensity") or {})),
                ("mean", _numbers(data["mean"])),
                ("std", _numbers(data["std"])),
            ]
        ),
        "",
        "Inputs are the image's pixels in [0, 1] (after the intensity window), the shorter side resized to the "
        "image size, centre-cropped, then normalised with the mean and std above (`config.json` holds them "
        "for timm).",
        "",
        "## Evaluations",
        "",
        *_evaluations(provenance.get("monitor") or [], provenance.get("selected") or {}),
        "",
        "## Lineage",
        "",
        "```",
        lineage.rstrip(),
        "```",
        "",
        "## Use",
        "",
        *_use(family, model, backbone),
    ]
    return "\n".join(lines) + "\n"


def _base_hub_id(base: dict[str, Any]) -> str | None:
    """The Hugging Face id of a timm hub base (timm's own weights are hosted there); None otherwise."""
    spec = base.get("spec") or ""
    if base.get("source") != "hub" or not spec.startswith("timm:"):
        return None
    default: Any = timm.models.get_pretrained_cfg(split_name(spec)[1])
    return getattr(default, "hf_hub_id", None) if default is not None else None


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *[f"| {key} | {value} |" for key, value in rows]]


def _numbers(values: list[float]) -> str:
    return ", ".join(f"{v:.4f}" for v in values)


def _window(window: dict[str, Any]) -> str:
    if not window or window.get("mode") == "full-range":
        return "none (the file's full range)"
    return ", ".join(f"{key} {value}" for key, value in window.items())


def _public_base(base: dict[str, Any]) -> str:
    """A hub name as it is; a local file by its name and sha256."""
    spec = base.get("spec")
    if not spec:
        return "random initialisation"
    if base.get("source") == "hub":
        return str(spec)
    sha = base.get("sha256")
    return f"{Path(str(spec)).name}" + (f" (sha256 {str(sha)[:16]})" if sha else "")


def _folder(path: Any) -> str:
    return Path(str(path)).name if path else ""


def _evaluations(records: list[dict[str, Any]], selected: dict[str, Any]) -> list[str]:
    if not records:
        return ["No labelled monitor was given: this run was not evaluated (`hpt eval RUN --train ... --test ...`)."]
    kind = records[0].get("monitor")
    if kind == "unlabelled":
        return _label_free(records)
    compared = selected.get("compared") or {}
    by = str(kind if selected.get("by") in (None, "last") else selected["by"])  # export=last: the monitor's score
    # before 0.7, or without the outcomes: the first test score is shown (in 0.6 it is also the one that picked)
    score = str(compared.get("score") or next((c for c in records[0] if c.endswith(("top1", "_k20"))), by))
    at = {r["step"]: r for r in records}
    picked, last = selected.get("step", records[-1]["step"]), records[-1]["step"]
    steps = sorted({0, picked, last} & set(at))
    rows = []
    for step in steps:
        role = ", ".join(name for name, s in (("start", 0), ("exported", picked), ("last", last)) if s == step)
        record = at[step]
        error = record.get(score + SE)
        test = _cell(record.get(score)) + (f" ± {error:.4f}" if error is not None else "")
        rows.append(f"| {step} ({role}) | {_cell(record.get(by)) if by != score else '-'} | {test} |")
    if selected.get("by") in (None, "last"):
        how = "the exported step is the last one (`monitor.export: last`)"
    elif by == score:  # hpt before 0.7 picked on the test split itself
        how = f"the exported step was picked by `{score}` on the test images themselves, so its score is biased upwards"
    else:
        how = f"the exported step was picked by `{by}` (validation images)"
    lines = [
        f"The run's monitor on its labelled splits: {how}; each step is reported by `{score}` on the test images "
        "(± one standard error, binomial).",
        "",
        f"| step | {by} (validation) | {score} (test) |",
        "|---|---|---|",
        *rows,
    ]
    for name, what in (("step_0", "the starting point (step 0)"), ("last", "the last step")):
        if name in compared:
            words = Difference.from_dict(compared[name]).words()
            lines += ["", f"The exported step against {what}, on the same test images: {words}."]
    return lines


def _label_free(records: list[dict[str, Any]]) -> list[str]:
    shown = [records[0]] if len(records) == 1 else [records[0], records[-1]]
    columns = [
        k for k, v in records[0].items() if k not in ("step", "monitor", "eval_s") and isinstance(v, int | float)
    ]
    rows = [f"| {r['step']} | " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in shown]
    return [
        "The run's monitor (label-free, on held-out images) at the start (step 0) and at the end:",
        "",
        "| step | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
        *rows,
    ]


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _use(family: str, model: str, backbone: str) -> list[str]:
    if family == "timm":
        load = [
            "import timm",
            'model = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True)  # or "hf-hub:USER/REPO"',
            "config = timm.data.resolve_data_config(model=model)  # this run's mean, std and size",
        ]
    elif family == "torchvision":
        load = [
            "import torch, torchvision",
            "from safetensors.torch import load_file",
            f'model = torchvision.models.get_model("{model}")',
            "# the final classifying layer is not in the file: replace it by torch.nn.Identity() first",
            'model.load_state_dict(load_file("backbone.safetensors"), strict=False)',
        ]
    else:
        load = [
            "from safetensors.torch import load_file",
            f"model.load_state_dict(load_file('backbone.safetensors'))  # model: your {backbone} module",
        ]
    return [
        "```python",
        *load,
        "```",
        "",
        "ONNX and TorchScript: `hpt export PATH/TO/THIS/FOLDER --format onnx` (or `torchscript`).",
    ]


def _learning_rate(provenance: dict[str, Any]) -> str:
    """The rate the run used and where it came from (hpt before 0.6 recorded only `optim.lr`, often None)."""
    resolved = provenance.get("resolved") or {}
    if "lr" in resolved:
        return f"{resolved['lr']:.4g} ({resolved['lr_rule']}, cosine to 0)"
    return str(provenance["config"]["optim"]["lr"])
