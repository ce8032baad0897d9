"""The layout docs/architecture.md draws: no import circles, and imports that flow one way.

Every `import` statement counts, wherever it stands (module level, inside a function, or under
`TYPE_CHECKING`): a circle that only type checkers see is still a circle a reader has to untangle.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("adapters", "data", "server", "studio", "tui")


def module_files() -> dict[str, Path]:
    """Every module of the product, by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules that `name` imports, resolved to the longest existing module."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_there_are_no_import_circles(graph: dict[str, set[str]]) -> None:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


# (importer prefix, prefixes it must never import)
TOP = ("server.app", "server.state")
FORBIDDEN = (
    ("server.engine", ("server.hotswap", "server.api", "server.jobs", *TOP)),
    ("server.hotswap", ("server.api", "server.jobs", *TOP)),
    ("server.jobs", ("server.api", *TOP)),
    ("adapters", ("server", "tui", "studio")),
    ("data", ("server", "tui", "studio")),
    ("server", ("tui", "studio")),
)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_imports_flow_one_way(graph: dict[str, set[str]]) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for importer, banned in FORBIDDEN
        if _under(module, importer)
        for target in targets
        if any(_under(target, prefix) for prefix in banned)
    )
    assert wrong == []


def test_the_layout_check_sees_a_circle() -> None:
    with pytest.raises(CycleError):
        tuple(TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())
