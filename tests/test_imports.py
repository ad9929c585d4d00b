"""No import cycles between metamask's modules at run time (``if TYPE_CHECKING:`` imports aside).

The imports are read from the source (every ``import`` and ``from ... import`` anywhere in a
module, including those inside functions: a lazy import still runs), so the test needs no
import of the package. Importing a submodule runs its package's ``__init__`` first; that edge is
not counted, which is what lets a package's ``__init__`` import its member modules while the
members import the package's registry (the layout the house follows: a registry imports none of
its members).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "metamask"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The metamask modules ``name`` imports at run time (targets resolved to modules)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        if target in modules and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: runtime_imports(path, name, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    described = "; ".join(" <-> ".join(c) for c in cycles)
    assert not cycles, f"import cycles between metamask modules: {described}"


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function closes a cycle; TYPE_CHECKING does not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import two\n")
    (pkg / "two.py").write_text("def f():\n    from pkg.one import x\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.one": pkg / "one.py", "pkg.two": pkg / "two.py"}
    assert runtime_imports(pkg / "one.py", "pkg.one", modules) == set()
    assert runtime_imports(pkg / "two.py", "pkg.two", modules) == {"pkg.one"}


@pytest.mark.parametrize("name", ["metamask.graph", "metamask.compose", "metamask.nodes.base"])
def test_modules_are_read(name: str) -> None:
    """Guard against a checker that silently reads nothing."""
    assert import_graph()[name], f"{name} imports no metamask module?"
