"""The shared package depends on no world: `pgha` (histories, checkers, scenarios, reports, the
analysis API, the agent) never imports `sim` or `chaos`, not even lazily inside a function. Only the
command line (`pgha/cli.py`), the composition root that dispatches to each world, may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PGHA = Path(__file__).resolve().parents[2] / "pgha"
WORLDS = ("sim", "chaos")
COMPOSITION_ROOTS = {PGHA / "cli.py"}


def world_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a world package anywhere in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [(node.lineno, n) for n in names if n.split(".")[0] in WORLDS]
    return found


def test_the_shared_package_imports_no_world() -> None:
    offenders = [
        f"{path.relative_to(PGHA.parent)}:{line}: imports {module}"
        for path in sorted(PGHA.rglob("*.py"))
        if path not in COMPOSITION_ROOTS
        for line, module in world_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import sim.run\n", [(1, "sim.run")]),
        ("def f():\n    from chaos.nemesis import Nemesis\n", [(2, "chaos.nemesis")]),
        ("import simpy\nfrom pgha.history import Event\nfrom . import sim\n", []),
    ],
)
def test_the_detector_sees_lazy_imports_and_nothing_else(
    source: str, found: list[tuple[int, str]]
) -> None:
    assert world_imports(source) == found
