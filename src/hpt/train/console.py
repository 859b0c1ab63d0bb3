"""The run's lines on the console: what the user gave (paths, names, reasons) printed exactly as it is.

Rich reads `[red]` in a string as markup and drops it, so a folder named `runs/a[red]b` would be shown as
`runs/ab` in every line. Every line of a run goes through `say`, which never reads markup: its parts are plain
text, and a part given as (text, style) is coloured.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

WARNING = "yellow"
BOLD = "bold"


def say(console: Console, *parts: str | tuple[str, str]) -> None:
    """One logged line made of `parts`: plain text, or (text, style) for a coloured word."""
    console.log(Text.assemble(*parts), _stack_offset=2)
