"""Layers around the loop: the status snapshot and the history events do not need the loop.

The REST API's health answers (pgha.health) read an `AgentStatus`; the simulator and the chaos
harness encode events. None of them should drag in the agent loop and its drivers, so these
modules must not import `pgha.loop` (read from the source, nothing is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PGHA = Path(__file__).resolve().parents[2] / "pgha"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("module", ["health.py", "status.py", "events.py"])
def test_does_not_import_the_loop(module: str) -> None:
    imports = imported_modules(PGHA / module)
    assert imports, f"{module}: no imports found (the test would pass vacuously)"
    assert "pgha.loop" not in imports


def test_the_status_is_built_from_engine_values_only() -> None:
    project = {m for m in imported_modules(PGHA / "status.py") if m.startswith("pgha")}
    assert project
    assert all(m.startswith("pgha.engine") for m in project), project


def test_the_detector_sees_a_loop_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import json\nfrom pgha.loop import agent_steps\nfrom . import sibling\n")
    assert imported_modules(probe) == {"json", "pgha.loop"}
