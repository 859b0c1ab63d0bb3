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
from hpt.checkpoints.provenance import AGAINST, FileProvenance, Origin, Selected
from hpt.errors import HptError
from hpt.eval.uncertainty import Difference, score_text
from hpt.export.preprocessing import from_provenance


def model_card(provenance: FileProvenance, lineage: str) -> str:
    p, data = provenance, provenance.data
    backbone, method = str(p.backbone), str(p.method)
    family, model = split_name(backbone)
    front: dict[str, Any] = {
        "library_name": "timm" if family == "timm" else "pytorch",
        "pipeline_tag": "image-feature-extraction",
        "tags": ["hpt", "self-supervised-learning", "image-feature-extraction", method, family],
    }
    hub_id = _base_hub_id(p.base)
    if hub_id:
        front["base_model"] = hub_id
    base = _public_base(p.base)
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {backbone}, {method} continued on {_folder(data.path) or 'the data below'}",
        "",
        f"A headless {backbone} (pooled features, no classifier) made by "
        f"hpt {p.hpt_version}: self-supervised pretraining ({method}, init `{p.init}`) continued from `{base}`.",
        "",
        "## Recipe",
        "",
        *_table(
            [
                ("method", method),
                ("initialisation", p.init),
                ("steps", p.steps),
                ("batch size", p.config_value("train.batch_size")),
                ("learning rate", _learning_rate(p)),
                ("image size", p.image_size),
                ("views", p.config_value("views.policy")),
                ("wall time", f"{p.wall_time_s:.0f} s"),
                ("backbone of step", p.selected.step if p.selected else p.steps),
                *([("computed with", p.environment.describe())] if p.environment else []),
            ]
        ),
        "",
        "## Data",
        "",
        *_table(
            [
                ("images", data.images),
                ("held out for the monitor", data.held_out),
                ("channels", data.channels),
                ("intensity window", _window(data.intensity or {})),
                ("mean", _numbers(data.mean or [])),
                ("std", _numbers(data.std or [])),
            ]
        ),
        "",
        "Inputs are the image's pixels in [0, 1] (after the intensity window, rounded to whole 8-bit levels), the "
        "shorter side resized to the image size, centre-cropped, then normalised with the mean and std above "
        "(`config.json` holds them for timm; the window and bands under its `hpt` key).",
        "",
        *_preprocessing(provenance),
        "## Evaluations",
        "",
        *_evaluations(p.monitor or [], p.selected),
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


def _preprocessing(provenance: FileProvenance) -> list[str]:
    """Raw pixels to the model's input, with hpt (`hpt.preprocessing`) and without it (plain NumPy)."""
    try:
        prepared = from_provenance(provenance)
    except HptError:
        return []
    return [
        "## Preprocessing raw pixels",
        "",
        'With hpt installed, `hpt.preprocessing("PATH/TO/THIS/FOLDER")` returns a function that takes a raw array '
        "(H x W x C, as your files store it) or a file and returns the model's input, exactly as this run made "
        "it; `hpt export PATH --format onnx --with-preprocessing --raw-type TYPE` puts it inside the ONNX file. "
        "Without hpt, for arrays already at the image size:",
        "",
        "```python",
        prepared.numpy_code(),
        "```",
        "",
    ]


def _base_hub_id(base: Origin | None) -> str | None:
    """The Hugging Face id of a timm hub base (timm's own weights are hosted there); None otherwise."""
    spec = base.spec or "" if base else ""
    if base is None or base.source != "hub" or not spec.startswith("timm:"):
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


def _public_base(base: Origin | None) -> str:
    """A hub name as it is; a local file by its name and sha256."""
    if base is None or not base.spec:
        return "random initialisation"
    if base.source == "hub":
        return base.spec
    return f"{Path(base.spec).name}" + (f" (sha256 {base.sha256[:16]})" if base.sha256 else "")


def _folder(path: Any) -> str:
    return Path(str(path)).name if path else ""


def _evaluations(records: list[dict[str, Any]], selected: Selected | None) -> list[str]:
    if not records:
        return ["No labelled monitor was given: this run was not evaluated (`hpt eval RUN --train ... --test ...`)."]
    kind = records[0].get("monitor")
    if kind == "unlabelled":
        return _label_free(records)
    compared = selected.compared if selected else None
    picked_by_score = selected is not None and selected.picked
    by = str(selected.by if selected and picked_by_score else kind)  # export=last: the monitor's score
    # before 0.7, or without the outcomes: the first test score is shown (in 0.6 it is also the one that picked)
    score = compared.score if compared else next((c for c in records[0] if c.endswith(("top1", "_k20"))), by)
    at = {r["step"]: r for r in records}
    picked, last = selected.step if selected else records[-1]["step"], records[-1]["step"]
    steps = sorted({0, picked, last} & set(at))
    rows = []
    for step in steps:
        role = ", ".join(name for name, s in (("start", 0), ("exported", picked), ("last", last)) if s == step)
        record = at[step]
        test = score_text(record, score)
        rows.append(f"| {step} ({role}) | {_cell(record.get(by)) if by != score else '-'} | {test} |")
    if not picked_by_score:
        how = "the exported step is the last one (`monitor.export: last`)"
    elif by == score:  # hpt before 0.7 picked on the test split itself
        how = f"the exported step was picked by `{score}` on the test images themselves, so its score is biased upwards"
    elif selected is not None and selected.leader is not None:
        how = (
            f"the exported step is the latest whose validation images cannot tell it from the best by `{by}` "
            f"(step {selected.leader}; exact McNemar, 95%)"
        )
    else:
        how = f"the exported step was picked by `{by}` (validation images)"
    lines = [
        f"The run's monitor on its labelled splits: {how}; each step is reported by `{score}` on the test images "
        "(± one standard error, binomial, and Wilson's 95% interval).",
        "",
        f"| step | {by} (validation) | {score} (test) |",
        "|---|---|---|",
        *rows,
    ]
    for name, difference in compared.named() if compared else []:
        words = Difference.from_dict(difference).words()
        lines += ["", f"The exported step against {AGAINST[name]}, on the same test images: {words}."]
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


def _learning_rate(provenance: FileProvenance) -> str:
    """The rate the run used and where it came from (hpt before 0.6 recorded only `optim.lr`, often None)."""
    resolved = provenance.resolved
    if resolved is not None:
        return f"{resolved.lr:.4g} ({resolved.lr_rule}, cosine to 0)"
    return str(provenance.config_value("optim.lr"))
