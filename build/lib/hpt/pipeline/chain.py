"""`hpt chain CHAIN.yaml --out DIR`: pretraining stages, each initialised from the previous stage's backbone.

A chain file is a small YAML diff, like a config file:

    base: timm:tf_efficientnet_lite0      # where stage 1 starts (or pass --base); optional for scratch
    backbone: timm:tf_efficientnet_lite0  # optional: taken from the base when it says
    defaults:                             # a config diff applied to every stage
      data: {image_size: 32}
    stages:
      - name: source
        data: {path: data/source}         # relative paths are relative to the chain file
        train: {steps: 500}
      - name: target
        data: {path: data/target}
        model: {init: bn-only}

Stage i writes the ordinary run folder `DIR/NN-name`; stage i > 1 starts from stage i-1's folder. Re-running a
chain skips a finished stage (when its config is unchanged), resumes a stage that was cut off from its last
checkpoint, and starts the rest.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from hpt.config import PretrainConfig, read_yaml_mapping, set_dotted, validate_config
from hpt.core.run_files import CONFIG
from hpt.errors import HptError
from hpt.report.build import build_report
from hpt.train.console import BOLD, duration, say
from hpt.train.loop import pretrain
from hpt.train.run_dir import check_run_dir, is_finished

CHAIN_KEYS = ("base", "backbone", "defaults", "stages")


@dataclass(frozen=True)
class Stage:
    name: str
    run: Path
    config: PretrainConfig


def load_chain(path: Path, out: Path, base: str | None = None) -> list[Stage]:
    """Resolve every stage's full config; any problem is reported before the first stage starts."""
    raw = read_yaml_mapping(path, what="chain file")
    unknown = sorted(set(raw) - set(CHAIN_KEYS))
    if unknown:
        raise HptError(f"chain '{path}': unknown key '{unknown[0]}' (known: {', '.join(CHAIN_KEYS)})")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise HptError(f"chain '{path}': 'stages' must be a non-empty list of stage configs")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise HptError(f"chain '{path}': 'defaults' must be a mapping of config keys")
    root = path.parent
    first_base = base or _relative_to(raw.get("base"), root)
    stages: list[Stage] = []
    names: set[str] = set()
    for number, stage_raw in enumerate(stages_raw, start=1):
        if not isinstance(stage_raw, dict):
            raise HptError(f"chain '{path}': stage {number} must be a mapping with a 'name'")
        stage_raw = dict(stage_raw)
        name = str(stage_raw.pop("name", f"stage{number}"))
        if name in names or not name.replace("-", "").replace("_", "").isalnum():
            raise HptError(f"chain '{path}': stage name '{name}' must be unique and made of letters, digits, - and _")
        names.add(name)
        merged = _merge(copy.deepcopy(defaults), stage_raw)
        if raw.get("backbone") and "backbone" not in merged.get("model", {}):
            set_dotted(merged, "model.backbone", raw["backbone"])
        if first_base and number == 1 and "base" not in merged.get("model", {}):
            set_dotted(merged, "model.base", first_base)
        elif number > 1:
            if "base" in merged.get("model", {}):
                raise HptError(f"chain '{path}': stage '{name}' starts from the previous stage; it takes no model.base")
            set_dotted(merged, "model.base", str(stages[-1].run))
        if merged.get("data", {}).get("path"):
            merged["data"]["path"] = _relative_to(merged["data"]["path"], root)
        config = validate_config(merged, source=f"chain '{path}' stage '{name}'")
        stages.append(Stage(name, out / f"{number:02d}-{name}", config))
    return stages


def _relative_to(value: Any, root: Path) -> Any:
    """A relative path that exists beside the chain file is taken from there; anything else is left as is."""
    if isinstance(value, str) and not Path(value).is_absolute() and (root / value).exists():
        return str((root / value).resolve())
    return value


def _merge(base: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any]:
    for key, value in diff.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def run_chain(path: Path, out: Path, base: str | None = None, console: Console | None = None) -> list[Path]:
    """`hpt chain`: run (or finish) every stage of the chain file at `path` in order, each starting from the
    one before; a finished stage of the same config is skipped, a cut-off one resumed.

    Args:
        path: the chain YAML (a base and a list of stages, each a config diff: see docs/cli.md).
        out: the folder of the stages' run folders and the report over them.
        base: where the first stage starts, instead of the chain file's base.

    Returns:
        The stages' run folders, in order.

    Example::

        from pathlib import Path
        from hpt import run_chain
        runs = run_chain(Path("chain.yaml"), Path("runs/chain"), base="timm:resnet50")
        print(runs[-1] / "backbone.safetensors")
    """
    console = console or Console(stderr=True, log_path=False)
    stages = load_chain(path, out, base)
    seconds_per_step: float | None = None  # the last stage run here: the pace the chain's ETA assumes
    for number, stage in enumerate(stages, start=1):
        label = f"stage {number}/{len(stages)} '{stage.name}'"
        if is_finished(stage.run):
            check_run_dir(stage.run, stage.config, overwrite=False, resume=True)  # same config, or an error
            say(console, f"{label}: finished earlier, skipped ({stage.run})")
            continue
        left = sum(s.config.train.steps for s in stages[number - 1 :])
        # at the last stage's pace: stages of another size or image resolution make it rough
        eta = f"; the chain has about {duration(left * seconds_per_step)} left" if seconds_per_step else ""
        say(console, (label, BOLD), f": {stage.config.train.steps} steps on {stage.config.data.path}{eta}")
        summary = pretrain(stage.config, stage.run, resume=(stage.run / CONFIG).is_file(), console=console)
        seconds_per_step = summary.wall_time_s / max(1, summary.steps)
    runs = [stage.run for stage in stages]
    report = build_report(runs, out / "report")
    say(console, f"chain done: {len(runs)} stages; the report over all of them: {report}")
    return runs
