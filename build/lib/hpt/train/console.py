"""The run's lines on the console: what the user gave (paths, names, reasons) printed exactly as it is.

Rich reads `[red]` in a string as markup and drops it, so a folder named `runs/a[red]b` would be shown as
`runs/ab` in every line. Every line of a run goes through `say`, which never reads markup: its parts are plain
text, and a part given as (text, style) is coloured. While a run folder is open (`keep_log`), each line is also
appended to its `train.log`, uncoloured, so that a job without a terminal keeps what its console said.
"""

from __future__ import annotations

from pathlib import Path
from weakref import WeakKeyDictionary

from rich.console import Console
from rich.text import Text

_LOGS: WeakKeyDictionary[Console, Console] = WeakKeyDictionary()
"""The log file's console beside each console whose run keeps one."""

WARNING = "yellow"
BOLD = "bold"


def duration(seconds: float) -> str:
    """A time span as a person reads it: seconds, minutes, or hours past an hour and a half."""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def say(console: Console, *parts: str | tuple[str, str]) -> None:
    """One logged line made of `parts`: plain text, or (text, style) for a coloured word."""
    text = Text.assemble(*parts)
    console.log(text, _stack_offset=2)
    if (log := _LOGS.get(console)) is not None:
        log.log(text, _stack_offset=2)
        log.file.flush()  # a killed run keeps every line it said


def keep_log(console: Console, path: Path) -> None:
    """From now on, what `say` prints on `console` is appended to `path` too (across resumes)."""
    _LOGS[console] = Console(file=open(path, "a"), width=160, no_color=True, log_path=False, soft_wrap=True)  # noqa: SIM115 - closed by close_log


def close_log(console: Console, ended_by: BaseException | None = None) -> None:
    """Stop appending; `ended_by`: what stopped the run (its line goes to the log alone: the command line
    prints it on the console)."""
    log = _LOGS.pop(console, None)
    if log is not None:
        if ended_by is not None:
            log.log(Text(f"stopped: {type(ended_by).__name__}: {ended_by}"))
        log.file.close()
