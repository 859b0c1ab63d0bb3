"""The layers of docs/design.md are the code's: every import goes from a package to one listed before it there,
every package is listed, and no two modules import each other, directly or round a longer loop. Read from the
source (every `import`, also those inside functions and under TYPE_CHECKING), so a lazy import cannot hide an
edge, and from the design page itself, so the page and this test cannot disagree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hpt

SOURCE = Path(hpt.__file__).parent
DESIGN = Path(__file__).parents[1] / "docs" / "design.md"


def layers() -> list[str]:
    """The packages in the design page's list, bottom layer first (a line's first word; indented lines go on)."""
    text = DESIGN.read_text()
    section = text[text.index("## Packages, and the direction of imports") :]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block, "docs/design.md: the package list (a code block) is missing"
    return [line.split()[0] for line in block.group(1).splitlines() if line and not line[0].isspace()]


def _modules() -> dict[str, Path]:
    """'hpt.train.loop' -> its file; a package is its __init__.py ('hpt.methods', and 'hpt' itself)."""
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        found[".".join(("hpt", *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return found


def module_imports() -> dict[str, set[str]]:
    """module -> the modules of hpt it imports (`from hpt.data import bands` imports hpt.data.bands)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    imported.add(name if name in modules else node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[module] = {name for name in imported if name in modules and name != module}
    return graph


def package_of(module: str) -> str:
    """'hpt.train.loop' -> 'train'; modules at the top ('hpt.config', 'hpt.cli') are their own package; the
    package `hpt` itself is the API."""
    return module.split(".")[1] if "." in module else "hpt"


def wrong_way(graph: dict[str, set[str]], order: list[str]) -> list[str]:
    """The imports that go from a package to one listed after it (or not at all)."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(
        f"{module} imports {imported}"
        for module, targets in graph.items()
        for imported in targets
        if rank.get(package_of(imported), len(order)) > rank.get(package_of(module), -1)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every node that can reach itself, with one loop through it (depth-first from each node)."""
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


def test_the_graph_is_read_from_the_source_and_the_list_from_the_page():
    graph = module_imports()
    assert "hpt.methods" in graph["hpt.train.build"] and "hpt.data.decode" in graph["hpt.data.window_choice"]
    assert "hpt.core.atomic" in graph["hpt.config"]  # an import inside a function counts
    assert layers()[:3] == ["errors", "version", "core"] and layers()[-1] == "hpt"


def test_every_package_is_in_the_list_and_every_listed_package_exists():
    packages = {package_of(module) for module in _modules()}
    assert packages == set(layers())


def test_every_import_goes_down_the_layers():
    assert wrong_way(module_imports(), layers()) == []


def test_the_bottom_layer_imports_only_errors():
    graph = module_imports()
    assert {package_of(i) for m, targets in graph.items() if package_of(m) == "core" for i in targets} <= {
        "core",
        "errors",
    }


def test_no_two_modules_import_each_other():
    assert cycles(module_imports()) == []


def test_the_checks_find_what_they_look_for():  # on made-up graphs: a -> b -> c -> a, and an import upwards
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})[0] == ["a", "b", "c", "a"]
    upward = {"hpt.core.x": {"hpt.train.y"}, "hpt.train.y": {"hpt.core.x"}}
    assert wrong_way(upward, ["errors", "core", "train"]) == ["hpt.core.x imports hpt.train.y"]
