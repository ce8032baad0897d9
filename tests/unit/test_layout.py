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


def test_data_imports_neither_adapters_nor_server(graph: dict[str, set[str]]) -> None:
    # data/ is the bottom layer: the trainer, the server and the TUI read it, never the reverse.
    data = [m for m in graph if _under(m, "data")]
    assert len(data) > 10
    wrong = sorted(
        f"{module} imports {target}"
        for module in data
        for target in graph[module]
        if _under(target, "adapters") or _under(target, "server")
    )
    assert wrong == []


def data_files() -> list[Path]:
    """Every module of data/."""
    return sorted((ROOT / "data").rglob("*.py"))


def prints_in(path: Path) -> list[str]:
    """Each call of the builtin `print` in a module, as `file:line`."""
    return [
        f"{path.name}:{node.lineno}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]


def argv_uses_in(path: Path) -> list[str]:
    """Each import of argparse and each read of `sys.argv` in a module, as `file:line what`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            if any(alias.name.partition(".")[0] == "argparse" for alias in node.names):
                found.append(f"{where} imports argparse")
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").partition(".")[0]
            if module == "argparse":
                found.append(f"{where} imports argparse")
            elif module == "sys" and any(alias.name == "argv" for alias in node.names):
                found.append(f"{where} imports sys.argv")
        elif isinstance(node, ast.Attribute) and node.attr == "argv":
            found.append(f"{where} reads argv")
    return found


def test_data_never_prints() -> None:
    # data returns values and raises errors; the command lines that print live in studio/.
    assert [hit for path in data_files() for hit in prints_in(path)] == []


def test_data_never_parses_argv() -> None:
    # Flags are parsed in studio/ and reach data as typed arguments.
    assert [hit for path in data_files() for hit in argv_uses_in(path)] == []


def test_the_data_checks_see_print_and_argv(tmp_path: Path) -> None:
    path = tmp_path / "cli.py"
    path.write_text(
        "import argparse\nimport sys\nfrom sys import argv\n"
        "def main():\n    print(sys.argv)\n    self.print('fine')\n"
    )
    assert prints_in(path) == ["cli.py:5"]
    assert argv_uses_in(path) == [
        "cli.py:1 imports argparse",
        "cli.py:3 imports sys.argv",
        "cli.py:5 reads argv",
    ]


ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "head", "route", "websocket"}


def _is_route(decorator: ast.expr) -> bool:
    func = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return name in ROUTE_DECORATORS


def handlers_in(path: Path) -> tuple[list[str], list[str]]:
    """The route handlers a module defines: (module-level ones, ones nested in a function as
    `outer.inner`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    top = [
        node.name
        for node in tree.body
        if isinstance(node, functions) and any(map(_is_route, node.decorator_list))
    ]
    nested = [
        f"{node.name}.{inner.name}"
        for node in ast.walk(tree)
        if isinstance(node, functions)
        for inner in ast.walk(node)
        if inner is not node
        and isinstance(inner, functions)
        and any(map(_is_route, inner.decorator_list))
    ]
    return top, nested


def test_route_handlers_are_module_level_functions() -> None:
    # A module-level handler can be named, imported and read; a closure only through its factory.
    routes = sorted((ROOT / "server" / "api" / "routes").glob("*.py"))
    top = [name for path in routes for name in handlers_in(path)[0]]
    assert len(top) > 30
    nested = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "server").rglob("*.py"))
        if (found := handlers_in(path)[1])
    }
    assert nested == {}


def test_the_handler_check_sees_a_closure(tmp_path: Path) -> None:
    path = tmp_path / "routes.py"
    path.write_text(
        "@post('/y')\nasync def kept():\n    pass\n"
        "def make():\n    @get('/x')\n    def handler():\n        pass\n"
    )
    assert handlers_in(path) == (["kept"], ["make.handler"])
