"""The packages import one way: wtal_common <- wtal_data <- prior_generation <- wtal_training,
and evaluation imports none of the stage packages (docs/architecture.md, "Package chain").

Read from the source with ``ast`` (imports inside functions count too), so a lazy import
against the chain fails here as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("wtal_common", "wtal_data", "prior_generation", "wtal_training", "evaluation")
# package -> the project packages it may import (besides itself)
ALLOWED = {
    "wtal_common": set(),
    "wtal_data": {"wtal_common"},
    "prior_generation": {"wtal_common", "wtal_data"},
    "wtal_training": {"wtal_common", "wtal_data", "prior_generation", "evaluation"},
    "evaluation": {"wtal_common"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level project packages named by absolute imports in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_chain(package):
    offending = []
    for path in sorted((REPO / package).rglob("*.py")):
        bad = imported_packages(path) - ALLOWED[package] - {package}
        if bad:
            offending.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offending, "imports against the package chain:\n" + "\n".join(offending)


def test_relative_imports_stay_inside_their_package():
    """``from ..x`` at a package's top level would leave it; the chain test reads only
    absolute imports, so check that no relative import climbs above its package."""
    offending = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            depth = len(path.relative_to(REPO / package).parts) - 1  # folders below the package root
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level > depth + 1:
                    offending.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offending, offending


def test_the_chain_test_sees_a_violation(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from wtal_training.engine import infer\n    import evaluation.cli\n")
    assert imported_packages(probe) == {"wtal_training", "evaluation"}


# -- inside a package: no import cycle, small modules ------------------------------------------
MAX_MODULE_LINES = 500


def module_name(path: Path) -> str:
    """``wtal_training/models/base.py`` -> ``wtal_training.models.base`` (a package's
    ``__init__.py`` is the package itself)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((REPO / package).rglob("*.py"))}


def module_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules one file imports, lazy imports inside functions included.

    ``from .pkg import name`` counts as importing ``pkg.name`` when that is a module, else
    ``pkg`` itself (its ``__init__``, which re-exports the name).  A parent package that
    Python runs implicitly on the way to a submodule is not counted: the edge is what the
    file names."""
    name = module_name(path)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [
                f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a function-less path
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package):
    """Modules of one package import each other one way, lazy imports counted: a cycle that
    only a function-level import keeps from failing at import time is still a cycle."""
    modules = project_modules(package)
    known = set(modules)
    graph = {name: module_imports(path, known) & known for name, path in modules.items()}
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(group) for group in cycles)


def test_the_cycle_test_sees_a_lazy_cycle(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("def x():\n    from . import a\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    modules = project_modules("pkg")
    graph = {name: module_imports(path, set(modules)) for name, path in modules.items()}
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]


@pytest.mark.parametrize("folder", [*PACKAGES, "tests", "benchmarks", "workflow"])
def test_no_module_over_500_lines(folder):
    """One job per module: a module past 500 lines holds more than one.  The tests, the
    benchmarks and the workflow's rule files (``.smk``) count too."""
    files = [*(REPO / folder).rglob("*.py"), *(REPO / folder).rglob("*.smk")]
    long = {
        str(p.relative_to(REPO)): n
        for p in sorted(files)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
