"""The import graph of the project's packages has no circle, deferred imports (inside functions
or under TYPE_CHECKING) included: a circle makes a module's meaning depend on who imports first."""

from __future__ import annotations

import ast

from harness.paths import REPO

PACKAGES = ("common", "scraper", "generator", "bot")


def _modules() -> dict[str, set[str]]:
    """Module name → the project modules it imports anywhere in its text."""
    paths = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            paths[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in paths.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        graph[name] = {m for m in imported if m in paths and m != name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    return next((found for m in sorted(graph) if m not in state and (found := visit(m))), None)


def test_the_project_imports_have_no_circle():
    graph = _modules()
    assert {"generator.sample", "generator.modeldir", "bot.runner"} <= set(graph)
    assert graph["generator.sample"] >= {"generator.modeldir", "generator.gate"}
    assert _circle(graph) is None, " → ".join(_circle(graph))


def test_the_circle_finder_finds_one():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None
