# Order of parsing: the cluster first (it names every host), then everything that refers to hosts.
# The first problem found stops parsing and becomes a ScenarioError with the file name; problems
# are found section by section in the order below, not necessarily in file order.
"""Reading a whole scenario: `parse_scenario` and `load_scenario`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from pgha.engine.config import WATCHDOG_KEYS
from pgha.located.errors import Problem
from pgha.located.tree import Fields, Node, compose, integer, mapping, text
from pgha.located.units import LATENCY_KEYS, Sign, duration_s
from pgha.scenario import _cluster, _faults, _sections
from pgha.scenario._errors import ScenarioError
from pgha.scenario._kinds import LONG_FORM_KEYS
from pgha.scenario._model import Scenario
from pgha.scenario._targets import scopes

SCENARIO_KEYS = (
    "name",
    "description",
    "seed",
    "duration",
    "cluster",
    "config",
    "network",
    "clocks",
    "workload",
    "postgres",
    "faults",
    "checks",
    "explore",
)

# Every mapping the loader reads, by the name of its definition in scenario.schema.json, with the
# keys it accepts (synonyms included). A test keeps the schema's properties equal to these.
ACCEPTED_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "scenario": SCENARIO_KEYS,
        "cluster": _cluster.CLUSTER_KEYS,
        "node": _cluster.NODE_SPEC_KEYS,
        "tags": _cluster.TAG_KEYS,
        "config": _cluster.CONFIG_KEYS,
        "watchdog": WATCHDOG_KEYS,
        "network": _sections.NETWORK_KEYS,
        "latency": LATENCY_KEYS,
        "clock": _sections.CLOCK_SPEC_KEYS,
        "workload": _sections.WORKLOAD_KEYS,
        "haproxy": _sections.HAPROXY_KEYS,
        "postgres": _sections.POSTGRES_KEYS,
        "checks": _sections.CHECKS_KEYS,
        "explore": _sections.EXPLORE_KEYS,
        "fault": (*_faults.FAULT_KEYS, *_faults.KIND_SYNONYMS),
        **LONG_FORM_KEYS,  # each fault kind's long form (pgha/scenario/_kinds.py)
    }
)


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    """Parse a scenario from YAML text.

    Args:
        text: the YAML document.
        source: the file name used in errors and kept as `Scenario.source`.

    Raises:
        ScenarioError: the first mistake found, with its line, field and what was expected.
    """
    try:
        return _scenario(compose(text), source)
    except Problem as problem:
        raise problem.at(source, ScenarioError) from None


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and parse a scenario file (UTF-8 YAML).

    Raises:
        ScenarioError: the file cannot be read, or the first mistake in it.
    """
    source = os.fspath(path)
    try:
        content = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(
            path=source, line=1, field="<file>", expected="a readable UTF-8 file", got=str(err)
        ) from None
    return parse_scenario(content, source)


def _scenario(root: Node, source: str) -> Scenario:
    fields = mapping(root, SCENARIO_KEYS)
    duration = duration_s(fields.required("duration", "a duration such as 5m"), Sign.POSITIVE)
    cluster = _cluster.cluster(fields.get("cluster"))
    names = tuple(spec.name for spec in cluster.nodes)
    hosts = scopes(names, cluster.etcd, cluster.placement)
    config = _cluster.config(fields.get("config"))
    network = _sections.network(fields.get("network"), hosts.host, cluster.nodes)
    context = _faults.FaultContext(scopes=hosts, duration_s=duration)
    return Scenario(
        name=text(fields.required("name", "a scenario name"), "a scenario name"),
        description=_description(fields),
        seed=_seed(fields),
        duration_s=duration,
        nodes=_sections.place_nodes(cluster.nodes, network.datacenters),
        etcd=cluster.etcd,
        etcd_placement=cluster.placement,
        config=config.value,
        config_raw=config.raw,
        network=network,
        clocks=_sections.clocks(fields.get("clocks"), hosts.host),
        workload=_sections.workload(fields.get("workload"), len(names)),
        postgres=_sections.postgres(fields.get("postgres")),
        faults=_faults.faults(fields.get("faults"), context),
        checks=_sections.checks(fields.get("checks")),
        explore=_sections.explore(fields.get("explore"), duration),
        source=source,
    )


def _description(fields: Fields) -> str:
    node = fields.get("description")
    return "" if node is None else text(node, "a description (a string)")


def _seed(fields: Fields) -> int:
    node = fields.get("seed")
    return 0 if node is None else integer(node, 0)
