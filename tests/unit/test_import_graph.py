"""The shape of the package: no import cycles, a leaf kit/, and a container nothing below imports.

Every import counts: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dialback

SRC = Path(dialback.__file__).parent
# The only modules that may import the container: what builds the process and the apps, and
# the one typed dependency the routes use.
CONTAINER_USERS = {
    "dialback.app",
    "dialback.server",
    "dialback.cli",
    "dialback.web.deps",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the dialback modules it imports (anywhere in its body)."""
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                # "from pkg import mod" imports the module pkg.mod when there is one.
                targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in paths and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_kit_imports_nothing_from_dialback() -> None:
    graph = import_graph()
    leaks = {
        m: sorted(t for t in deps if not t.startswith("dialback.kit"))
        for m, deps in graph.items()
        if m.startswith("dialback.kit")
    }
    assert {m: d for m, d in leaks.items() if d} == {}


def test_only_the_top_imports_the_container() -> None:
    graph = import_graph()
    users = {m for m, deps in graph.items() if "dialback.container" in deps}
    assert users <= CONTAINER_USERS, sorted(users - CONTAINER_USERS)


def test_web_holds_no_business_rules() -> None:
    """web/ is HTTP plumbing: it may reach the container and kit/, not a domain's rules."""
    graph = import_graph()
    domains = ("callbacks", "services", "callins", "monitor", "routing", "db")
    reached = {
        m: sorted(t for t in deps if t.split(".")[1] in domains)
        for m, deps in graph.items()
        if m.startswith("dialback.web")
    }
    assert {m: d for m, d in reached.items() if d} == {}


def test_routes_never_open_a_transaction() -> None:
    """The transaction rule: service methods own their transactions, routes only call them."""
    opened = []
    for path in SRC.rglob("*.py"):
        if not (path.name.endswith("endpoints.py") or path.parent.name == "web"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("begin", "connect")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "engine"
            ):
                opened.append(f"{_module_name(path)}:{node.lineno}")
    assert opened == []
