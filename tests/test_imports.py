"""The import graph of the project has no circle, between modules or between packages, deferred
imports (inside functions or under TYPE_CHECKING) included: a circle makes a module's meaning
depend on who imports first. bench/, tools/ and harness/ import nothing from tests/, and the
scripts import each other by package (`from bench.ngram import ...`), never by a bare module
name that only resolves with their own folder on sys.path. Read with `ast`, imported by none."""

from __future__ import annotations

import ast

from harness.paths import REPO

# Lower layers first: each package may import those before it, never one after it.
PACKAGES = ("common", "scraper", "generator", "bot", "harness", "tools", "bench")
SCRIPT_PACKAGES = ("harness", "tools", "bench")  # support and scripts: never import tests


def _imports(path) -> set[str]:
    """Every absolute name a file imports anywhere in its text: `from a.b import c` gives a.b and
    a.b.c (c may be a module or a name in a.b)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    return imported


def _paths() -> dict[str, object]:
    """Module name → its file, for every module of PACKAGES."""
    paths = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            paths[name.removesuffix(".__init__")] = path
    return paths


def _modules() -> dict[str, set[str]]:
    """Module name → the project modules it imports anywhere in its text."""
    paths = _paths()
    return {name: {m for m in _imports(path) if m in paths and m != name}
            for name, path in paths.items()}


def _packages(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package → the other packages its modules import."""
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for name, targets in modules.items():
        top = name.split(".")[0]
        graph[top] |= {t.split(".")[0] for t in targets} - {top}
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
    assert {"generator.sample", "generator.modeldir", "bot.runner", "harness.pipeline",
            "tools.gpu_run", "bench.bench_generator"} <= set(graph)
    assert graph["generator.sample"] >= {"generator.modeldir", "generator.gate"}
    assert _circle(graph) is None, " → ".join(_circle(graph))


def test_the_packages_import_only_lower_layers():
    graph = _packages(_modules())
    assert graph["bench"] >= {"harness", "tools"} and graph["tools"] >= {"harness"}
    assert _circle(graph) is None, " → ".join(_circle(graph))
    upward = {(p, t) for p, targets in graph.items() for t in targets
              if PACKAGES.index(t) > PACKAGES.index(p)}
    assert not upward, f"imports of a later layer (PACKAGES): {sorted(upward)}"


def test_bench_tools_and_harness_import_nothing_from_tests():
    found = {f"{path.relative_to(REPO)}: {name}"
             for package in SCRIPT_PACKAGES for path in (REPO / package).rglob("*.py")
             for name in _imports(path) if name.split(".")[0] == "tests"}
    assert not found, sorted(found)


def test_scripts_import_each_other_by_package():
    scripts = {path.stem for package in ("tools", "bench")
               for path in (REPO / package).glob("*.py")}
    bare = {f"{path.relative_to(REPO)}: {name}"
            for package in SCRIPT_PACKAGES for path in (REPO / package).rglob("*.py")
            for name in _imports(path) if name.split(".")[0] in scripts - {"__init__"}}
    assert not bare, sorted(bare)


def test_the_circle_finder_finds_one():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None
