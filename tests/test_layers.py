"""The package's layers, read from its imports (every ``import``, at module level or inside a
function): what each layer may use, and no circles.

    metarl.core        the maths: only metarl.errors (and torch)
    metarl.runs        run infrastructure: nothing of core, rl, supervised or envs
    metarl.envs        task environments: nothing of core, rl or supervised
    metarl.rl          may use core, runs, envs -- never supervised
    metarl.supervised  may use core, runs -- never rl or envs
    metarl.commands    the `metarl` command: may use everything; nothing else uses it
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

from .conftest import REPO

FOLDERS = {"metarl": REPO / "metarl", "metarl.envs": REPO / "envs",
           "metarl.supervised": REPO / "supervised"}
"""Installed package name -> the folder it is built from (pyproject's package-dir)."""

FORBIDDEN = {
    "metarl.core": ("metarl.runs", "metarl.rl", "metarl.supervised", "metarl.envs",
                    "metarl.commands"),
    "metarl.runs": ("metarl.core", "metarl.rl", "metarl.supervised", "metarl.envs",
                    "metarl.commands"),
    "metarl.envs": ("metarl.core", "metarl.rl", "metarl.supervised", "metarl.commands"),
    "metarl.rl": ("metarl.supervised", "metarl.commands"),
    "metarl.supervised": ("metarl.rl", "metarl.envs", "metarl.commands"),
    "metarl.errors": ("metarl.",),
}
"""Layer (a module or package prefix) -> the prefixes its modules must not import."""


def module_files() -> dict[str, Path]:
    """Every module of the installed package by its dotted name."""
    modules: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            modules.setdefault(name, path)  # metarl/ holds no envs/ or supervised/ of its own
    return modules


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's own modules that the file at ``path`` (module ``name``) imports."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `from m import function` -> m
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix.rstrip(".") + ".") \
        or (prefix.endswith(".") and module.startswith(prefix))


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    """``"a imports b"`` for every import that crosses a forbidden layer boundary."""
    wrong = []
    for module, targets in sorted(graph.items()):
        for layer, banned in FORBIDDEN.items():
            if not _within(module, layer):
                continue
            for target in sorted(targets):
                if any(_within(target, b) for b in banned):
                    wrong.append(f"{module} imports {target}")
    return wrong


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of two or more modules, or one that
    imports itself), each as a sorted list of module names. A package importing its own
    submodules (``metarl.envs`` -> ``metarl.envs.ant``) is not an edge back to it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def edges(node: str) -> Iterator[str]:
        for target in graph.get(node, ()):
            if not _within(target, node) and target in graph:
                # a submodule importing its parent package is the parent's __init__ running:
                # fine unless that __init__ imports the submodule back, which the parent's own
                # edges show
                yield target

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges(node):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    """The reader sees the imports it should (a reader that finds none would pass everything)."""
    graph = import_graph()
    assert {"metarl.core.adapt", "metarl.rl.trainer", "metarl.runs.loop", "metarl.envs.ant",
            "metarl.supervised.trainer"} <= set(graph)
    assert "metarl.core.functional" in graph["metarl.core.adapt"]
    assert "metarl.runs.checkpoint" in graph["metarl.runs.loop"]
    assert "metarl.envs.base" in graph["metarl.rl.sampler"]


def test_layers_hold():
    assert layer_violations(import_graph()) == []


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_the_checks_catch_what_they_should():
    """Planted faults are found: a core module using runs, rl and supervised using each other,
    errors importing anything, and a two-module circle."""
    graph = {
        "metarl.core.adapt": {"metarl.runs.io"},
        "metarl.rl.sampler": {"metarl.supervised.tasks"},
        "metarl.supervised.tasks": {"metarl.rl.sampler"},
        "metarl.errors": {"metarl.runs.runlock"},
        "metarl.runs.runlock": {"metarl.errors"},
        "metarl.runs.io": set(),
    }
    assert layer_violations(graph) == [
        "metarl.core.adapt imports metarl.runs.io",
        "metarl.errors imports metarl.runs.runlock",
        "metarl.rl.sampler imports metarl.supervised.tasks",
        "metarl.supervised.tasks imports metarl.rl.sampler",
    ]
    assert sorted(circles(graph)) == [["metarl.errors", "metarl.runs.runlock"],
                                      ["metarl.rl.sampler", "metarl.supervised.tasks"]]


def test_public_api_names_functions_and_modules_apart():
    """``metarl.adapt`` is the function; the module that defines it is ``metarl.core.adapt``
    (a re-export under a module's own name would make ``import metarl.adapt`` the function)."""
    import types

    import metarl
    import metarl.core.adapt

    assert callable(metarl.adapt) and not isinstance(metarl.adapt, types.ModuleType)
    assert isinstance(metarl.core.adapt, types.ModuleType)
    assert metarl.core.adapt.adapt is metarl.adapt
    for name in metarl.__all__:
        assert not isinstance(getattr(metarl, name), types.ModuleType), name
