"""The fault modules import in one direction (read from the source, nothing is imported).

The shared fault code (pgha/faults: the port and the planner; pgha/scenario: the registry of
kinds) imports nothing of either world. In each world the run imports the fault injector, the
injector its appliers, and the appliers a Protocol of what they need, never back: no module of
sim/faults*.py, sim/run.py or chaos/nemesis*.py reaches itself through its imports. Every import
counts, including those only made for type checking and those inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pgha", "sim", "chaos")
FAULT_MODULES = (
    "sim.faults",
    "sim.faults_ops",
    "sim.faults_world",
    "sim.run",
    "chaos.nemesis",
    "chaos.nemesis_faults",
    "chaos.nemesis_ops",
    "chaos.nemesis_view",
    "chaos.nemesis_world",
    "chaos.nemesis_writes",
)


def _module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _module_files()


def imports_in(source: str) -> set[str]:
    """Every module a source imports, anywhere (`from a import b` counts as a and as a.b)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def imported(name: str) -> set[str]:
    """The project modules `name` imports."""
    found = imports_in(MODULES[name].read_text(encoding="utf-8"))
    return {module for module in found if module in MODULES and module != name}


def _reachable(start: str) -> Iterator[str]:
    seen: set[str] = set()
    todo = list(imported(start))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        yield module
        todo.extend(imported(module))


@pytest.mark.parametrize("module", FAULT_MODULES)
def test_a_fault_module_is_on_no_import_circle(module: str) -> None:
    assert module in MODULES, f"{module}: no such module (the test would pass vacuously)"
    assert module not in set(_reachable(module))


@pytest.mark.parametrize("package", ["pgha.faults", "pgha.scenario"])
def test_the_shared_fault_code_imports_neither_world(package: str) -> None:
    modules = [name for name in MODULES if name == package or name.startswith(f"{package}.")]
    assert modules
    for name in modules:
        worlds = {m for m in imported(name) if m.split(".")[0] in ("sim", "chaos")}
        assert not worlds, f"{name} imports {sorted(worlds)}"


def test_the_detector_sees_imports_for_type_checking_and_inside_functions() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from sim.run import Simulation\n"
        "def f():\n"
        "    from chaos import nemesis_faults\n"
    )
    assert {"sim.run", "chaos.nemesis_faults"} <= imports_in(source)
