# The inverse of the loader, for reproducers: the explorer writes the schedules it found as scenario
# files that `pgha sim run` reads back. The promise is a round trip: `parse_scenario(dump(s))`
# equals `s` except for what only a file has (`source`, each fault's `line`). So every number is
# written as it is held (seconds, per second, fractions; a float keeps its repr, which YAML reads
# back to the same float), `config` is written from `config_raw` (the keys as given, with their
# int/float types, since the history's `run_start` prints them), and defaults are left out where a
# reader would only be distracted by them. The output is plain PyYAML: block style for the
# sections, flow style for small leaf mappings (`- {at: 60, kill: primary, for: 90}`).
"""Writing a Scenario back as YAML text that `parse_scenario` reads to an equal Scenario."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import yaml

from pgha.engine.values import Tags
from pgha.scenario import _sections
from pgha.scenario._kinds import FAULT_KINDS
from pgha.scenario._model import (
    ChecksSpec,
    EtcdPlacement,
    ExploreSpec,
    FaultSpec,
    HAProxySpec,
    LatencySpec,
    NetworkSpec,
    NodeSpec,
    PostgresSpec,
    Scenario,
    WorkloadSpec,
)
from pgha.scenario._written import duration, number, plain, rate

Doc = dict[str, Any]


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML text; `parse_scenario` of it gives back an equal Scenario.

    Equal except for `source` and each fault's `line`, which only a file gives. `config` is
    written from `config_raw`, so a Scenario built in code must keep the two consistent.
    """
    document: Doc = {"name": scenario.name}
    if scenario.description:
        document["description"] = scenario.description
    document["seed"] = scenario.seed
    document["duration"] = duration(scenario.duration_s)
    document["cluster"] = _cluster(scenario)
    if scenario.config_raw:
        document["config"] = plain(scenario.config_raw)
    network = _network(scenario)
    if network:
        document["network"] = network
    if scenario.clocks:
        document["clocks"] = {
            host: _Flow(offset=duration(spec.offset_s), drift_ppm=number(spec.drift_ppm))
            for host, spec in scenario.clocks.items()
        }
    if scenario.workload is not None:
        document["workload"] = _workload(scenario.workload)
    if scenario.postgres != PostgresSpec():
        document["postgres"] = _postgres(scenario.postgres)
    if scenario.faults:
        document["faults"] = [dump_fault(spec) for spec in scenario.faults]
    document["checks"] = _checks(scenario.checks)
    if scenario.explore is not None:
        document["explore"] = _explore(scenario.explore)
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


class _Flow(dict[str, Any]):
    """A mapping written on one line: `{at: 60s, kill: primary, for: 90s}`."""


class _FlowList(list[Any]):
    """A list written on one line: `[30s, 8m]`."""


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, with the two one-line containers."""


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Text of several lines as a folded block (`>`); PyYAML falls back to quotes where needed.
    style = ">" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)
_Dumper.add_representer(
    _Flow, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, True)
)
_Dumper.add_representer(
    _FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, True)
)


# ---------------------------------------------------------------- cluster and conditions


def _counted(names: tuple[str, ...], prefix: str) -> bool:
    return names == tuple(f"{prefix}{i}" for i in range(1, len(names) + 1))


def _cluster(scenario: Scenario) -> Doc:
    nodes = scenario.nodes
    plain_nodes = all(spec.tags == Tags() for spec in nodes)
    cluster: Doc = _Flow(
        nodes=len(nodes)
        if plain_nodes and _counted(scenario.node_names, "n")
        else [_node(spec) for spec in nodes],
        etcd=len(scenario.etcd) if _counted(scenario.etcd, "etcd") else list(scenario.etcd),
    )
    if scenario.etcd_placement is not EtcdPlacement.OWN_HOSTS:
        cluster["etcd_placement"] = scenario.etcd_placement.value
    return cluster


def _node(spec: NodeSpec) -> str | Doc:
    # Datacenters are written once, under network.datacenters (see _datacenters).
    default = Tags()
    tags = {
        f.name: getattr(spec.tags, f.name)
        for f in fields(Tags)
        if getattr(spec.tags, f.name) != getattr(default, f.name)
    }
    return _Flow(name=spec.name, tags=tags) if tags else spec.name


def _latency(spec: LatencySpec) -> Doc:
    return _Flow(median=duration(spec.median_s), p99=duration(spec.p99_s))


def _datacenters(scenario: Scenario) -> dict[str, list[str]]:
    merged = {dc: list(hosts) for dc, hosts in scenario.network.datacenters.items()}
    placed = {host for hosts in merged.values() for host in hosts}
    for spec in scenario.nodes:
        if spec.datacenter is not None and spec.name not in placed:
            merged.setdefault(spec.datacenter, []).append(spec.name)
    return merged


def _network(scenario: Scenario) -> Doc:
    spec, default = scenario.network, NetworkSpec()
    out: Doc = {}
    if spec.latency != default.latency:
        out["latency"] = _latency(spec.latency)
    datacenters = _datacenters(scenario)
    if datacenters:
        out["datacenters"] = {dc: _FlowList(hosts) for dc, hosts in datacenters.items()}
    if spec.inter_dc_latency is not None:
        out["inter_dc_latency"] = _latency(spec.inter_dc_latency)
    if spec.loss:
        out["loss"] = number(spec.loss)
    if spec.etcd_pre_vote != default.etcd_pre_vote:
        out["etcd_pre_vote"] = spec.etcd_pre_vote
    if spec.down_hosts != default.down_hosts:
        out["down_hosts"] = spec.down_hosts
    return out


def _workload(spec: WorkloadSpec) -> Doc:
    out = _Flow(
        rate=rate(spec.rate_per_s),
        via=spec.via.value,
        clients=spec.clients,
        timeout=duration(spec.timeout_s),
    )
    if spec.haproxy != HAProxySpec():
        out["haproxy"] = _Flow(
            check_interval=duration(spec.haproxy.check_interval_s),
            fall=spec.haproxy.fall,
            rise=spec.haproxy.rise,
        )
    return out


def _postgres(spec: PostgresSpec) -> Doc:
    return _Flow(
        {key: duration(getattr(spec, name)) for key, name in _sections.POSTGRES_FIELDS.items()}
    )


def _checks(spec: ChecksSpec) -> Doc:
    def optional(value: float | None) -> str | int | float | None:
        return None if value is None else duration(value)

    document: Doc = {
        "no_split_brain": spec.no_split_brain,
        "no_lost_acknowledged_writes": spec.no_lost_acknowledged_writes,
        "max_lost_writes": spec.max_lost_writes,
        "failover_within": optional(spec.failover_within_s),
        "eventually_healthy": optional(spec.eventually_healthy_s),
    }
    if spec.operator_requests_succeed:  # off by default: written only when on
        document["operator_requests_succeed"] = True
    return document


def _explore(spec: ExploreSpec) -> Doc:
    return {
        "faults": _FlowList(kind.value for kind in spec.faults),
        "max_faults": spec.max_faults,
        "window": _FlowList(duration(bound) for bound in spec.window_s),
        # Ranges stay numbers: a range does not say whether it holds seconds, ppm or a fraction.
        "params": {
            name: _FlowList([number(bounds.low), number(bounds.high)])
            for name, bounds in spec.params.items()
        },
    }


# ---------------------------------------------------------------- faults


def dump_fault(spec: FaultSpec) -> Doc:
    """One fault entry as the mapping a scenario file holds (at, the kind, for, label)."""
    entry: Doc = _Flow(at=duration(spec.at_s))
    entry[spec.kind.value] = FAULT_KINDS[spec.kind].dump(spec.params)
    if spec.for_s is not None:
        entry["for"] = duration(spec.for_s)
    if spec.label is not None:
        entry["label"] = spec.label
    return entry
