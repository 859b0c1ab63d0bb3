"""What `hpt pretrain` checks before it imports torch, Fabric and timm (seconds of start-up), so that the common
mistakes are one line at once: the config (validated as it is loaded), a `--data` that does not exist, an
`--out` that holds another run, a `--base` (or distillation's `--teacher`) that is neither a hub name, a run folder
nor a weights file.
Everything else is checked by the plan (`plan.py`), before any file is written. Imports nothing heavy:
`benchmarks/fail_fast.py` measures the time to each error."""

from __future__ import annotations

from pathlib import Path

from hpt.checkpoints.kinds import check_weights_spec
from hpt.config import NO_TEACHER, PretrainConfig
from hpt.core.run_files import earlier_attempt
from hpt.data.locations import is_url, refuse_url
from hpt.data.shards import is_sharded
from hpt.errors import HptError

NO_DATA = "no data: pass --data DIR (a folder of images or a file list)"


def precheck(config: PretrainConfig, out: Path, overwrite: bool, resume: bool) -> None:
    if config.data.path is None:
        raise HptError(NO_DATA)
    if is_sharded(config.data.path):
        return _others(config, out, overwrite, resume)  # a pattern or URL of shards: listed by the plan
    if is_url(config.data.path):
        raise refuse_url(config.data.path, "data")
    if not Path(config.data.path.removeprefix("file://")).expanduser().exists():
        raise HptError(f"data '{config.data.path}' does not exist")
    _others(config, out, overwrite, resume)


def _others(config: PretrainConfig, out: Path, overwrite: bool, resume: bool) -> None:
    earlier_attempt(out, overwrite, resume)
    if config.model.base:
        check_weights_spec(config.model.base)
    if config.method == "distill":
        if config.distill.teacher is None:
            raise HptError(NO_TEACHER)
        check_weights_spec(config.distill.teacher, "teacher")
