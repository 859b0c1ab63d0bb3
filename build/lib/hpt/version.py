"""The version of hpt: one place, read by the package, its build (pyproject.toml) and every file a run writes."""

__version__ = "0.7.0"
