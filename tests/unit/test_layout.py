"""The layout docs/architecture.md draws: no import circles, imports that flow one way (data
imports no other package of ours, nothing beside server/api/ imports it, the wire types import
only data), no printing or argv in data, and module-level route handlers.

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
    ("data", ("adapters", "server", "tui", "studio")),
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


SERVER_TOP = "server.app"
"""The one module directly under server/ that mounts the HTTP edge (cli.py starts it)."""


def test_modules_beside_api_import_nothing_from_it(graph: dict[str, set[str]]) -> None:
    # State, catalog, stores and runner sit below the HTTP edge: api/ reads them, never the reverse.
    beside = [m for m in graph if m.count(".") == 1 and m.startswith("server.")]
    assert "server.state" in beside
    wrong = sorted(
        f"{module} imports {target}"
        for module in beside
        if module != SERVER_TOP
        for target in graph[module]
        if _under(target, "server.api")
    )
    assert wrong == []
    assert not any(_under(t, "server.api") for t in graph["server.state"])


def test_wire_types_import_only_data_and_each_other(graph: dict[str, set[str]]) -> None:
    # The TUI decodes with these Structs and the stores persist them: no room of the server here.
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if _under(module, "server.wire")
        for target in targets
        if not (_under(target, "server.wire") or _under(target, "data"))
    )
    assert wrong == []


def test_the_layout_check_sees_a_circle() -> None:
    with pytest.raises(CycleError):
        tuple(TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def test_data_neither_prints_nor_parses_argv() -> None:
    # The command lines of data live in studio: data returns values and raises errors.
    found = []
    for path in sorted((ROOT / "data").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "print":
                    found.append(f"{where} calls print")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "argparse" in names:
                    found.append(f"{where} imports argparse")
            elif isinstance(node, ast.Attribute) and node.attr == "argv":
                found.append(f"{where} reads argv")
    assert found == []


ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "head", "route", "websocket"}
NESTED_HANDLERS = {
    "server/api/routes/adapters.py",
    "server/api/routes/files.py",
}
"""Route files whose handlers are still closures inside a `*_routes()` factory, none may join:
the SSE keepalive and the upload size limit each reach a decorator through the factory."""


def _nested_handlers(path: Path) -> list[str]:
    nested = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if inner is node or not isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in inner.decorator_list:
                func = decorator.func if isinstance(decorator, ast.Call) else decorator
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in ROUTE_DECORATORS:
                    nested.append(f"{node.name}.{inner.name}")
    return nested


def test_route_handlers_are_module_level_functions() -> None:
    # A module-level handler can be named, imported and read; a closure only through its factory.
    files = {
        str(path.relative_to(ROOT)): _nested_handlers(path)
        for path in sorted((ROOT / "server").rglob("*.py"))
    }
    nested = {name for name, handlers in files.items() if handlers}
    assert nested - NESTED_HANDLERS == set(), {n: files[n] for n in nested - NESTED_HANDLERS}
    # The list only shrinks: a file whose handlers moved out leaves it.
    assert NESTED_HANDLERS - nested == set()


def test_the_handler_check_sees_a_closure(tmp_path: Path) -> None:
    path = tmp_path / "routes.py"
    path.write_text("def make():\n    @get('/x')\n    def handler():\n        pass\n")
    assert _nested_handlers(path) == ["make.handler"]
