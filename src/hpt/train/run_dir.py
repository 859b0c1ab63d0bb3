"""A run folder: what `hpt pretrain` writes, and the rules that protect a user's work.

A folder that already holds files is refused unless the user says `--overwrite` (start again) or `--resume`
(continue: only when the folder's `config.yaml` is the config asked for now, in every setting the run reads).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, get_args

from lightning_fabric.loggers import Logger

from hpt.config import Method, MethodSection, PretrainConfig, read_yaml_mapping, with_resolved_paths
from hpt.core.atomic import make_folder, remove_stale_temporaries, write_text_atomic
from hpt.core.run_files import (
    BACKBONE,
    CONFIG,
    LOCK,
    METRICS,
    REFUSED,
    REPLACED,
    SKIPPED,
    earlier_attempt,
    records,
)
from hpt.errors import HptError
from hpt.train.launch import concrete_settings
from hpt.train.loggers import log_record


def check_run_dir(out: Path, config: PretrainConfig, overwrite: bool, resume: bool) -> bool:
    """Whether `out` may be written; True when there is an earlier attempt of this same run to continue."""
    if not earlier_attempt(out, overwrite, resume):
        return False
    then = with_resolved_paths(read_yaml_mapping(out / CONFIG, f"--resume: '{out}''s"))
    then = with_added_keys(then, PretrainConfig().to_dict())
    now = concrete_settings(config)  # `auto` as this machine resolves it: what the folder's config records
    difference = first_difference(*in_effect(then, with_resolved_paths(now.to_dict())))
    if difference:
        raise HptError(f"--resume: '{out}' was started with another config ({difference}); use a new --out")
    return True


def with_added_keys(old: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`old` (the config.yaml an earlier hpt wrote) with the settings added since at their defaults. A setting
    is added with a default that does what hpt did without it (`optim.name: sgd`, `optim.clip_grad: None`), so a
    run started before it resumes, unless the setting is now asked otherwise."""
    merged = dict(old)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = with_added_keys(merged[key], value)
    return merged


HOW_NOT_WHAT = (("data", "num_workers"), ("train", "loggers"))
"""Settings that change how fast a run goes or where its scalars are also sent, not what it computes (a view is
drawn from its image's own seed, so the loader processes do not change a batch): a `--resume` on a machine with
other cores, or without TensorBoard where the default then logs to CSV, goes on."""


def in_effect(then: dict[str, Any], now: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two runs' settings (as mappings) without what neither run reads: the sections of methods neither uses, and
    each method's learning rates for optimisers neither takes its rate for (all of them where both set `optim.lr`).
    A run started before an upgrade that changed only such a default resumes after it; a difference either run
    reads is still named by its own key (`optim.lr`, not the method's rate it replaces). Settings of how fast, not
    what (`HOW_NOT_WHAT`), are left out too."""
    configs = (then, now)
    methods = {str(c.get("method")) for c in configs}
    rates = {MethodSection.rate_key(c.get("optim", {}).get("name", "sgd")) for c in configs
             if c.get("optim", {}).get("lr") is None}  # fmt: skip

    def kept(config: dict[str, Any]) -> dict[str, Any]:
        out = {key: value for key, value in config.items() if key in methods or key not in get_args(Method)}
        for section, key in HOW_NOT_WHAT:
            if isinstance(out.get(section), dict):
                out[section] = {k: v for k, v in out[section].items() if k != key}
        for method in methods & out.keys():
            if isinstance(out[method], dict):
                out[method] = {k: v for k, v in out[method].items() if k in rates or k not in MethodSection.RATE_KEYS}
        return out

    return kept(then), kept(now)


def first_difference(old: Any, new: Any, prefix: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if old == new else f"{prefix.rstrip('.')}: {old!r} then, {new!r} now"


def create_run_dir(out: Path, continuing: bool) -> Path:
    make_folder(out)
    remove_stale_temporaries(out)  # half a write of an attempt that was killed; the file it was replacing is intact
    if not continuing:  # a folder an hpt run owns, or one holding none of its names (`earlier_attempt`)
        for name in REPLACED:
            if (out / name).is_dir() and not (out / name).is_symlink():
                shutil.rmtree(out / name)
            else:
                (out / name).unlink(missing_ok=True)
        (out / METRICS).write_text("")
    return out


def refusal_report(out: Path) -> Path:
    """Where a refused start lists every unusable file (`data/screen.py`'s `TooManyUnusable`): the folder's
    `skipped.jsonl` when it is new or holds nothing else (it stays a folder a run may start in), else beside what
    it holds, never over it."""
    if out.is_dir() and any(p.name not in (LOCK, SKIPPED) for p in out.iterdir()):
        return out / REFUSED
    return out / SKIPPED


def is_finished(run: Path) -> bool:
    return (run / BACKBONE).is_file()


class MetricsLog:
    """`metrics.jsonl`: one JSON object per logged step, appended and flushed as it happens. Not `enabled`:
    a process of a multi-process run that is not the one that writes."""

    def __init__(self, path: Path, enabled: bool = True, loggers: list[Logger] | None = None) -> None:
        self.path, self.enabled = path, enabled
        self.loggers = loggers or []
        """Fabric's loggers (`loggers.py`), which get every record's numbers too."""

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise HptError(f"could not append to '{self.path}' ({exc.strerror or exc})") from None
        log_record(self.loggers, record)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after `step` (an attempt that was cut off after its last checkpoint). A line cut
        in half by a kill is dropped too."""
        if self.enabled and self.path.is_file():
            kept = [record for record in records(self.path) if record["step"] <= step]
            write_text_atomic(self.path, "".join(json.dumps(record) + "\n" for record in kept))
