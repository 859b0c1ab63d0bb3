"""Build-time parts of the documentation site (mkdocs `hooks:`), so that what it says cannot drift from the code:

- the configuration reference (`reference.md`) is generated from `hpt.config`, its types, defaults and the
  docstrings of its fields, and committed as generated so that a code host shows it too:
  `.venv/bin/python docs/hooks.py` writes it, `tests/test_config.py` keeps it equal to this generator's output;
- each study's results page is its committed `benchmarks/results/` output, served as it is, beside the
  plots it links, and the changelog is the repository's own `CHANGELOG.md`.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REFERENCE = ROOT / "docs" / "reference.md"
INTRO = """# Configuration reference

Every key of `hpt pretrain`'s configuration, its type, default and meaning, generated from `hpt/config.py`
(`.venv/bin/python docs/hooks.py`). A YAML file given with `--config` is a small diff over these defaults;
flags are a diff over the file, and `--set KEY=VALUE` reaches any key (`--set mocov2.queue_size=4096`);
`hpt pretrain --print-config` prints the config a command resolves to. An unknown key, a wrong type or an
out-of-range value stops before any work with one line naming the key, exit code 2.
"""


def on_files(files: Files, config: Any) -> Files:
    for path in sorted(RESULTS.rglob("*")):
        # not a study's runs/ or data/ (git-ignored, left by a local run): their model cards are not pages
        if path.suffix in (".md", ".png") and not {"runs", "data"} & set(path.relative_to(RESULTS).parts[:-1]):
            files.append(
                File(
                    f"results/{path.relative_to(RESULTS).as_posix()}",
                    str(RESULTS.parent),
                    config["site_dir"],
                    config["use_directory_urls"],
                )
            )
    files.append(File("CHANGELOG.md", str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def reference_page() -> str:
    """`docs/reference.md` as the config now defines it."""
    from hpt.config import PretrainConfig

    return f"{INTRO}\n{config_reference(PretrainConfig)}\n"


def config_reference(model: type[BaseModel]) -> str:
    """One table per section of the config (`data`, `train`, ...), one row per key."""
    top = ["| key | type | default | what |", "|---|---|---|---|"]
    sections = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            doc = " ".join((annotation.__doc__ or "").split())
            rows = [_row(f"{name}.{key}", sub) for key, sub in annotation.model_fields.items()]
            sections.append(
                "\n".join(
                    [
                        f"## `{name}`",
                        "",
                        *([doc, ""] if doc else []),
                        "| key | type | default | what |",
                        "|---|---|---|---|",
                        *rows,
                        "",
                    ]
                )
            )
        else:
            top.append(_row(name, field))
    return "\n".join([*top, "", *sections])


def _row(key: str, field: Any) -> str:
    if field.default_factory is not None:
        default = (
            "computed"
            if field.default_factory.__name__ == "<lambda>" and key.endswith("workers")
            else repr(field.default_factory())
        )
    else:
        default = repr(field.default)
    what = " ".join((field.description or "").split()).replace("|", "\\|")
    return f"| `{key}` | {_type(field.annotation)}{_bounds(field)} | `{default}` | {what} |".replace("`None`", "none")


def _type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in args)
    if origin is typing.Annotated:  # a constrained number: its type and its range
        return _type(args[0]) + "".join(_bounds(info).replace(", ", " ", 1) for info in args[1:])
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin in (typing.Union, types.UnionType):  # X | Y, None last
        named = [_type(arg) for arg in args if arg is not type(None)]
        return " \\| ".join(named + ["none"] * (type(None) in args))
    return re.sub(r"typing\.|<class '([^']+)'>", r"\1", str(annotation)).replace("|", "\\|")


def _bounds(field: Any) -> str:
    """The range a number must lie in, from the field's `ge`/`gt`/`le`/`lt` constraints."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    found = [f"{signs[name]} {getattr(item, name)}" for item in field.metadata for name in signs if hasattr(item, name)]
    return f", {' and '.join(found)}" if found else ""


if __name__ == "__main__":
    REFERENCE.write_text(reference_page())
    print(f"wrote {REFERENCE}")
