"""The package's shape, checked from its source: no import cycles, no private names borrowed
across modules, no function longer than a screenful or two. Fast and in-process (ast only)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "staystream"
MAX_FUNCTION_LINES = 100


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


MODULES = _modules()


def _imports(name: str, tree: ast.Module) -> set[tuple[str, str | None]]:
    """(module, imported name or None) for every import of the package anywhere in `tree`,
    top level or inside a function: an import at call time is still a dependency."""
    package = name if name in MODULES and (PACKAGE / "/".join(name.split(".")[1:]) / "__init__.py").exists() \
        else name.rpartition(".")[0]
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names if alias.name.startswith("staystream"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.startswith("staystream"):
                found.update((base, alias.name) for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, tree in MODULES.items():
        for module, imported in _imports(name, tree):
            target = f"{module}.{imported}" if f"{module}.{imported}" in MODULES else module
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_name_is_imported_from_another_module() -> None:
    borrowed = sorted(
        f"{name} imports {imported} from {module}"
        for name, tree in MODULES.items()
        for module, imported in _imports(name, tree)
        if imported is not None and imported.startswith("_") and module != name
    )
    assert borrowed == []


@pytest.mark.parametrize("layer, forbidden", [
    ("staystream.search", "staystream.writer"),  # the read side maps what the writer made, never imports it
    ("staystream.memory", "staystream.writer"),
    ("staystream.events", "staystream.api"),
    ("staystream.durable", "staystream.api"),
])
def test_layers_do_not_import_upwards(layer: str, forbidden: str) -> None:
    graph = _graph()
    wrong = sorted(f"{name} -> {target}" for name in graph if name.startswith(layer)
                   for target in graph[name] if target.startswith(forbidden))
    assert wrong == []


def test_no_function_is_over_100_lines() -> None:
    long = sorted(
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    )
    assert long == []


def _module_map() -> dict[str, set[str]]:
    """docs/architecture.md's module map: part -> the parts that may import it."""
    text = (PACKAGE.parent.parent / "docs" / "architecture.md").read_text()
    table = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    allowed = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            part = cells[0].strip("`").removesuffix("/").removesuffix(".py")
            allowed[part] = {word.split()[0] for word in cells[2].split(",") if word.strip()}
    return allowed


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_the_module_map_lists_every_part_and_allows_every_import() -> None:
    allowed = _module_map()
    parts = {_part(name) for name in MODULES} - {"staystream", "__main__"}
    assert sorted(parts - set(allowed)) == [], "parts missing from the module map in docs/architecture.md"
    assert sorted(set(allowed) - parts) == [], "the module map lists parts the package does not have"
    graph = _graph()
    forbidden = sorted(
        f"{name} imports {target}" for name in graph for target in graph[name]
        if _part(name) != _part(target) and _part(target) in allowed and _part(name) not in allowed[_part(target)]
    )
    assert forbidden == [], "imports the module map does not allow"
