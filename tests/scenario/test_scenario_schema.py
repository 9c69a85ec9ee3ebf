"""The published JSON Schema agrees with the loader: same keys, and every good file validates."""

from __future__ import annotations

import functools
import json
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgha.engine import config as engine_config
from pgha.scenario import ACCEPTED_KEYS
from pgha.scenario._cluster import CONFIG_KEYS
from tests.scenario.test_scenario_faults import FORMS
from tests.scenario.texts import EXPLORE_EXAMPLE, HEADER, ISSUE_EXAMPLE

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
BUNDLED = sorted((REPO / "scenarios").glob("*.yaml")) + sorted(
    (REPO / "scenarios" / "chaos").glob("*.yaml")
)


@functools.cache
def _schema() -> dict[str, Any]:
    text = (files("pgha") / "schema" / "scenario.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Any:
    return jsonschema.Draft202012Validator(_schema())


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = _schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


GOOD = {
    "issue-3-example": ISSUE_EXAMPLE,
    "issue-4-explore": EXPLORE_EXAMPLE,
    **{f"fault {form}": f"{HEADER}faults:\n  - {{at: 1m, {form}}}\n" for form, _, _ in FORMS},
    "everything": HEADER
    + (
        "description: all sections\nseed: 3\n"
        "cluster: {nodes: [n1, {name: n2, tags: {nofailover: true}, datacenter: east}], etcd: 1,"
        " etcd_placement: on_nodes}\n"
        "config: {ttl: 20s, synchronous_mode: on, watchdog: {mode: off}, postgresql: {}}\n"
        "network: {latency: 2ms, inter_dc_latency: {median: 10ms, p99: 30ms}, loss: 1%,"
        " datacenters: {west: [n1]}, etcd_pre_vote: false}\n"
        "clocks: {n1: {offset: -2s, drift_ppm: 10}}\n"
        "workload: {rate: 600/m, via: direct, clients: 2, timeout: 2s}\n"
        "checks: {max_lost_writes: 10, failover_within: null, eventually_healthy: 1m,"
        " operator_requests_succeed: true}\n"
        "explore: {faults: [crash], window: [0, 1m], params: {pause_for: [1s, 1m]}}\n"
    ),
}


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_good_documents_validate_against_the_schema(text: str) -> None:
    errors = [e.message for e in _validator().iter_errors(yaml.safe_load(text))]
    assert errors == []


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_scenarios_validate_against_the_schema(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [e.message for e in _validator().iter_errors(document)] == []


@pytest.mark.parametrize(
    "body",
    [
        "netwrok: {}\n",
        "faults: [{at: 1m, kill: n1, pause: n2}]\n",
        "faults: [{at: 1m}]\n",
        "faults: [{at: 1m, partition: {isolate: n1, groups: [[n1], [n2]]}}]\n",
        "faults: [{at: 1m, clock: {node: n1, jump: 1s, offset: 2s}}]\n",
        "faults: [{at: 1m, kill: n1, for: 5 minutes}]\n",
        "workload: {rate: 10 per second}\n",
        "cluster: {nodes: [primary]}\n",
        "config: {tll: 30}\n",
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(body: str) -> None:
    assert list(_validator().iter_errors(yaml.safe_load(HEADER + body)))


def test_schema_properties_are_the_keys_the_loader_accepts() -> None:
    defs = _schema()["$defs"]
    with_properties = {name for name, definition in defs.items() if "properties" in definition}

    assert with_properties == set(ACCEPTED_KEYS)
    for name, keys in ACCEPTED_KEYS.items():
        assert set(defs[name]["properties"]) == set(keys), name


def test_loader_accepts_every_key_the_engine_parses() -> None:
    engine_keys = {
        *engine_config._DURATIONS,
        *engine_config._INTS,
        *engine_config._BOOLS,
        *engine_config.IGNORED_KEYS,
        "synchronous_mode",
        "watchdog",
    }

    assert engine_keys == set(CONFIG_KEYS)


def test_schema_ships_as_package_data_and_jsonschema_is_a_dev_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))

    assert "schema/*.json" in project["tool"]["setuptools"]["package-data"]["pgha"]
    assert any(
        dep.startswith("jsonschema") for dep in project["project"]["optional-dependencies"]["dev"]
    )
