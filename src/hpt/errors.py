"""The one exception type for problems with what the user gave hpt."""


class HptError(Exception):
    """Bad input (a path, a config key, a checkpoint): the CLI prints it as one line and exits with 2."""
