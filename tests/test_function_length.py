"""No function in src/ runs over 80 lines (docstring and signature included): a longer one does several things,
and its parts want names. Read from the source, so a new long function fails here, not in a review."""

from __future__ import annotations

import ast
from pathlib import Path

import hpt

LONGEST = 80
SOURCE = Path(hpt.__file__).parent


def test_no_function_in_src_is_over_80_lines():
    long = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONGEST:
                    long.append(f"{path.relative_to(SOURCE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"over {LONGEST} lines: " + "; ".join(long)
