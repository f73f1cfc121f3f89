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
