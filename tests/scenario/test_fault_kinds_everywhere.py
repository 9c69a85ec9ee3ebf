"""Every fault kind of the scenario format is complete everywhere a fault kind lives. The registry
(pgha.scenario.FAULT_KINDS) has one entry per kind with its parser, dumper and parameters; each
world's appliers (sim/faults.py, chaos/nemesis_faults.py) and the explorer's draws
(sim/explore/draws.py) have an entry for every kind, unless the registry names the kind as not
applied in that world, or not drawn, with the reason. The kinds are also in the published JSON
Schema and documented in docs/scenarios.md. A new kind missing in one place fails here, by name."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from chaos.nemesis import Nemesis, unsupported
from chaos.nemesis_faults import APPLY as CHAOS_APPLY
from pgha.faults import Applied, Firing, Skipped, appliers, on
from pgha.scenario import (
    FAULT_KINDS,
    PARAMS_TYPE,
    WORLDS,
    FaultKind,
    KillFault,
    WorldName,
    dump_scenario,
    kind_of,
    parse_scenario,
)
from pgha.scenario._kinds import KIND_SYNONYMS
from sim.explore import DRAW_PARAMS
from sim.explore.space import PARAM_DEFAULTS
from sim.faults import APPLY as SIM_APPLY
from tests.scenario.test_scenario_faults import FORMS

KINDS = {kind.value for kind in FaultKind}
DOCS = Path(__file__).resolve().parents[2] / "docs"
APPLIERS: Mapping[WorldName, Mapping[FaultKind, Any]] = {"sim": SIM_APPLY, "chaos": CHAOS_APPLY}
BASE = "name: kinds\nduration: 10m\ncluster: {nodes: 3, etcd: 3}\n"


def test_the_registry_has_one_entry_per_kind_in_the_enums_order() -> None:
    assert list(FAULT_KINDS) == list(FaultKind)
    assert all(entry.kind is kind for kind, entry in FAULT_KINDS.items())
    assert all(kind_of(PARAMS_TYPE[kind]) is kind for kind in FaultKind)
    assert set(APPLIERS) == set(WORLDS)


@pytest.mark.parametrize("kind", list(FaultKind), ids=lambda kind: kind.value)
def test_every_kind_is_complete_everywhere(kind: FaultKind) -> None:
    entry = FAULT_KINDS[kind]
    assert callable(entry.parse), "no parser"
    assert callable(entry.dump), "no dumper"
    assert entry.params_type is PARAMS_TYPE[kind]
    for world in WORLDS:
        applied = kind in APPLIERS[world]
        if entry.applied_in(world):
            assert applied, f"{world} has no applier for {kind.value}"
        else:
            assert not applied, f"{world} applies {kind.value}, which the registry says it cannot"
            assert entry.unsupported[world].strip(), "a world that cannot apply a kind says why"
    if entry.not_drawn is None:
        assert kind in DRAW_PARAMS, f"the explorer does not draw {kind.value}"
    else:
        assert kind not in DRAW_PARAMS
        assert entry.not_drawn.strip(), "a kind the explorer does not draw says why"


@pytest.mark.parametrize(("form", "kind", "params"), FORMS, ids=[form for form, _, _ in FORMS])
def test_the_registrys_parser_and_dumper_round_trip_every_form(
    form: str, kind: FaultKind, params: Any
) -> None:
    scenario = parse_scenario(f"{BASE}faults:\n  - {{at: 1m, {form}}}\n")
    (again,) = parse_scenario(dump_scenario(scenario)).faults
    assert (again.kind, again.params) == (kind, params)


def test_the_explorers_parameters_are_the_registrys() -> None:
    # The explorer's default ranges are for exactly the parameters the registry's kinds draw.
    drawn = {name for entry in FAULT_KINDS.values() for name in entry.explore_params}
    assert {"for", *drawn} == set(PARAM_DEFAULTS)


def _kill(world: object, params: KillFault, firing: Firing) -> Applied:
    return firing.applied((), None, at=0.0)


def test_a_world_table_must_hold_every_kind_it_applies_and_no_other() -> None:
    with pytest.raises(RuntimeError, match=r"sim appliers: missing \['restart'"):
        appliers("sim", on(KillFault, _kill))
    with pytest.raises(RuntimeError, match=r"unexpected \['latency'\]"):
        appliers("chaos", *((kind, SIM_APPLY[kind]) for kind in FaultKind))


class _NoCluster:
    """Enough of a ChaosCluster to build a Nemesis; nothing of it is called here."""

    def __init__(self, text: str) -> None:
        self.scenario = parse_scenario(text)


def test_a_kind_a_world_cannot_apply_is_named_before_the_run_and_skipped_in_it() -> None:
    text = f"{BASE}faults:\n  - {{at: 1s, latency: {{targets: n1, median: 50ms}}}}\n"
    reason = FAULT_KINDS[FaultKind.LATENCY].unsupported["chaos"]
    assert unsupported(parse_scenario(text), loop_devices=True) == [f"faults[0] (line 5): {reason}"]
    nemesis = Nemesis(_NoCluster(text))  # type: ignore[arg-type]
    result = nemesis.apply(nemesis.scenario.faults[0])
    assert isinstance(result, Skipped)
    assert result.reason == f"{reason} (run it in the simulator)"
    (record,) = nemesis.records
    assert (record["phase"], record["error"], record["targets"]) == ("skipped", result.reason, [])


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
    long_forms = {entry.schema for entry in FAULT_KINDS.values() if entry.schema is not None}
    assert long_forms <= set(defs)


def test_the_format_doc_has_a_row_for_every_kind() -> None:
    text = (DOCS / "scenarios.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z_]+)`(?: \(synonym `[a-z]+`\))? \|", text, re.MULTILINE))
    assert rows >= KINDS, sorted(KINDS - rows)
