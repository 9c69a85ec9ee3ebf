"""Layers of the simulator's two packages (issue 14): the explorer (sim/explore) and the simulated
PostgreSQL (sim/postgres).

Their modules import one another without a circle, the WAL model (sim/postgres/wal.py) is pure
(the standard library only: no SimPy, nothing of the project), and the package faces
(`__init__.py`) re-export what they list in `__all__`. Read from the source: nothing is imported.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from tests.architecture.test_engine_imports import oversized

SIM = Path(__file__).resolve().parents[2] / "sim"
PACKAGES = ("explore", "postgres")
WAL_STDLIB = frozenset({"__future__", "array", "bisect", "itertools"})


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute imports; TYPE_CHECKING blocks included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            out.add(node.module)
    return out


def graph(package: str) -> dict[str, set[str]]:
    """The package's modules (its face left out) and the sibling modules each imports."""
    prefix = f"sim.{package}."
    modules = sorted((SIM / package).glob("*.py"))
    assert modules, f"sim/{package}: no modules found (the test would pass vacuously)"
    return {
        prefix + path.stem: {m for m in imports_of(path) if m.startswith(prefix)}
        for path in modules
        if path.name != "__init__.py"
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_the_modules_import_one_another_without_a_circle(package: str) -> None:
    edges = graph(package)
    assert any(edges.values()), f"sim/{package}: no imports between modules found"
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"sim/{package}: import circle {' -> '.join(error.args[1])}")


@pytest.mark.parametrize("package", PACKAGES)
def test_the_modules_and_their_functions_are_small(package: str) -> None:
    offenders = [
        problem
        for path in sorted((SIM / package).glob("*.py"))
        for problem in oversized(path.read_text(), f"sim.{package}.{path.stem}")
    ]
    assert not offenders, "\n".join(offenders)


def test_the_wal_model_is_pure() -> None:
    imports = imports_of(SIM / "postgres" / "wal.py")
    assert imports, "wal.py: no imports found (the test would pass vacuously)"
    assert imports <= WAL_STDLIB, sorted(imports - WAL_STDLIB)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_face_exports_what_it_lists(package: str) -> None:
    tree = ast.parse((SIM / package / "__init__.py").read_text())
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    listed = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    )
    assert listed
    assert set(listed) == imported
