"""Every fault kind of the scenario format is complete everywhere a fault kind lives: parsed and
dumped (pgha/scenario), in the published JSON Schema, applied by the simulator (sim/faults.py)
and by the chaos harness (chaos/nemesis_faults.py), drawn by the explorer (sim/explore.py) and
documented in docs/scenarios.md. A new kind missing in one place fails here, by name."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from chaos.nemesis_faults import APPLY as CHAOS_APPLY
from pgha.scenario import PARAMS_TYPE, FaultKind
from pgha.scenario._dump import _PARAMS as DUMPERS
from pgha.scenario._faults import KIND_SYNONYMS, PARSERS
from sim.explore import DRAW_PARAMS
from sim.faults import APPLY as SIM_APPLY

KINDS = {kind.value for kind in FaultKind}
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _names(table: Any) -> set[str]:
    return {kind.value for kind in table}


@pytest.mark.parametrize(
    ("where", "table"),
    [
        ("PARAMS_TYPE (pgha/scenario/_model.py)", PARAMS_TYPE),
        ("PARSERS (pgha/scenario/_faults.py)", PARSERS),
        ("_PARAMS (pgha/scenario/_dump.py)", DUMPERS),
        ("APPLY (sim/faults.py)", SIM_APPLY),
        ("APPLY (chaos/nemesis_faults.py)", CHAOS_APPLY),
        ("DRAW_PARAMS (sim/explore.py)", DRAW_PARAMS),
    ],
)
def test_every_kind_has_an_entry(where: str, table: Any) -> None:
    assert _names(table) == KINDS, where


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (files("pgha") / "schema" / "scenario.schema.json").read_text("utf-8")
    )
    return schema


def test_the_schema_knows_every_kind_as_a_fault_and_as_an_explore_kind() -> None:
    defs = _schema()["$defs"]
    words = KINDS | set(KIND_SYNONYMS)
    fault = defs["fault"]
    assert set(fault["properties"]) - {"at", "for", "label"} == words
    assert {tuple(one["required"]) for one in fault["oneOf"]} == {(w,) for w in words}
    assert set(defs["explore"]["properties"]["faults"]["items"]["enum"]) == words


def test_the_format_doc_has_a_row_for_every_kind() -> None:
    text = (DOCS / "scenarios.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z_]+)`(?: \(synonym `[a-z]+`\))? \|", text, re.MULTILINE))
    assert rows >= KINDS, sorted(KINDS - rows)
