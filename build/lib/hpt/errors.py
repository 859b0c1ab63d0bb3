"""The one exception type for problems with what the user gave hpt."""


class HptError(Exception):
    """Bad input (a path, a config key, a checkpoint): the CLI prints it as one line and exits with 2."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception raised by a library, to quote inside an `HptError`."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
