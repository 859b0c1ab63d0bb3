"""Imports only go down: no two packages of hpt import each other, directly or round a longer loop, and the
bottom layer (`hpt.core`) imports nothing of hpt's but its errors. Read from the source (every `import`, also
those inside functions), so a cycle that only a lazy import would hide is found too."""

from __future__ import annotations

import ast
from pathlib import Path

import hpt

SOURCE = Path(hpt.__file__).parent


def _package_of(module: str) -> str:
    """'hpt.train.loop' -> 'train'; modules at the top ('hpt.config', 'hpt.cli') are their own package."""
    return module.split(".")[1]


def _imports() -> dict[str, set[str]]:
    """package -> the packages its modules import."""
    graph: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        module = ".".join(("hpt", *path.relative_to(SOURCE).with_suffix("").parts))
        if module.endswith(".__init__"):
            module = module[: -len(".__init__")]
        if module == "hpt" or module.count(".") == 0:
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        own = _package_of(module)
        graph.setdefault(own, set()).update(
            _package_of(name) for name in imported if name.startswith("hpt.") and _package_of(name) != own
        )
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every package that can reach itself, with one loop through it (depth-first from each package)."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_the_graph_is_read_from_the_source():
    graph = _imports()
    assert {"core", "train", "methods", "eval", "data", "cli"} <= graph.keys()
    assert "methods" in graph["train"] and "core" in graph["methods"]  # the loop runs methods; methods use helpers


def test_no_two_packages_import_each_other():
    assert _cycles(_imports()) == []


def test_the_bottom_layer_imports_only_errors():
    assert _imports()["core"] <= {"errors"}


def test_a_cycle_is_found():  # the check itself, on a made-up graph: a -> b -> c -> a
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})[0] == ["a", "b", "c", "a"]
