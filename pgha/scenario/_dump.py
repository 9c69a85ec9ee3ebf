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

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

import yaml

from pgha.engine.values import Tags
from pgha.scenario import _sections
from pgha.scenario._model import (
    Bridge,
    ChecksSpec,
    ClockFault,
    ConfigFault,
    DiskFullFault,
    EtcdFault,
    EtcdPlacement,
    EtcdPutFault,
    ExploreSpec,
    FailoverFault,
    FaultKind,
    FaultParams,
    FaultSpec,
    HAProxySpec,
    HealFault,
    KillAgentFault,
    KillFault,
    KillPostgresFault,
    LatencyFault,
    LatencySpec,
    LossFault,
    NetworkSpec,
    NodeSpec,
    PartitionFault,
    PauseFault,
    PauseWhat,
    PostgresSpec,
    RestartFault,
    Scenario,
    SwitchoverFault,
    Target,
    WorkloadSpec,
)

Doc = dict[str, Any]
_MAX_EXACT_INT = 2**53  # floats up to here that are whole numbers are written without ".0"


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
        document["config"] = _plain(scenario.config_raw)
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


def number(value: float) -> int | float:
    """A number as YAML should show it: whole floats without ".0" (the loader reads both)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_EXACT_INT:
        return int(value)
    return value


def duration(value: float) -> str | int | float:
    """A duration as YAML should show it: "90s", "1.5s", "-40s" (a number if repr needs an
    exponent, which the duration syntax lacks). The loader reads each back to the same float."""
    shown = number(value)
    text = repr(shown)
    return shown if "e" in text or "inf" in text or "nan" in text else f"{text}s"


def rate(value: float) -> str | int | float:
    """A rate per second as YAML should show it: "10/s" (a number if repr needs an exponent)."""
    shown = number(value)
    text = repr(shown)
    return shown if "e" in text or "inf" in text or "nan" in text else f"{text}/s"


def _plain(value: Any) -> Any:
    # FrozenDict and tuples are not PyYAML's safe types: plain dicts and lists, keeping scalars.
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


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
    entry[spec.kind.value] = _PARAMS[spec.kind](spec.params)
    if spec.for_s is not None:
        entry["for"] = duration(spec.for_s)
    if spec.label is not None:
        entry["label"] = spec.label
    return entry


def target(value: Target) -> str | list[str]:
    """A target as written: a role word, one name, or a list of names."""
    if value.role is not None:
        return value.role.value
    return value.names[0] if len(value.names) == 1 else list(value.names)


def _one(value: Target) -> str:
    # Fields that take one host (etcd member, candidate, a partition group's item).
    written = target(value)
    assert isinstance(written, str), "this field takes one name or a role"
    return written


def _node_fault(params: FaultParams) -> str | list[str]:
    assert isinstance(params, KillFault | RestartFault | KillAgentFault | KillPostgresFault)
    return target(params.target)


def _disk_full(params: FaultParams) -> str | list[str]:
    assert isinstance(params, DiskFullFault)
    return target(params.target)


def _pause(params: FaultParams) -> str | list[str] | Doc:
    assert isinstance(params, PauseFault)
    if params.what is PauseWhat.NODE:
        return target(params.target)
    return {"node": target(params.target), "what": params.what.value}


def _partition(params: FaultParams) -> Doc:
    assert isinstance(params, PartitionFault)
    if params.isolate is not None:
        return {"isolate": target(params.isolate)}
    if params.groups is not None:
        return {"groups": [[_one(member) for member in group] for group in params.groups]}
    if params.one_way is not None:
        return {"from": target(params.one_way[0]), "to": target(params.one_way[1])}
    assert isinstance(params.bridge, Bridge)
    sides = params.bridge
    return {"a": target(sides.a), "b": target(sides.b), "bridge": target(sides.bridge)}


def _heal(params: FaultParams) -> bool:
    assert isinstance(params, HealFault)
    return True


def _clock(params: FaultParams) -> Doc:
    assert isinstance(params, ClockFault)
    out: Doc = {"node": target(params.target)}
    for key, value in (
        ("offset", params.offset_s),
        ("drift_ppm", params.drift_ppm),
        ("jump", params.jump_s),
    ):
        if value is not None:
            out[key] = number(value) if key == "drift_ppm" else duration(value)
    return out


def _etcd(params: FaultParams) -> Doc:
    assert isinstance(params, EtcdFault)
    return {"member": _one(params.member), "action": params.action.value}


def _loss(params: FaultParams) -> Doc:
    assert isinstance(params, LossFault)
    return {"targets": target(params.targets), "rate": number(params.rate)}


def _latency_fault(params: FaultParams) -> Doc:
    assert isinstance(params, LatencyFault)
    return {
        "targets": target(params.targets),
        "median": duration(params.median_s),
        "p99": duration(params.p99_s),
    }


def _switchover(params: FaultParams) -> Doc:
    assert isinstance(params, SwitchoverFault)
    out: Doc = {}
    if params.leader is not None:
        out["leader"] = _one(params.leader)
    if params.candidate is not None:
        out["candidate"] = _one(params.candidate)
    if params.scheduled_at_s is not None:
        out["at"] = duration(params.scheduled_at_s)
    return out


def _failover(params: FaultParams) -> Doc:
    assert isinstance(params, FailoverFault)
    return {"candidate": _one(params.candidate)}


def _config(params: FaultParams) -> Doc:
    # The patch as it is sent: numbers stay numbers (a duration string would be the operator's
    # mistake, sent as text), lists as lists.
    assert isinstance(params, ConfigFault)
    out: Doc = {"patch": _plain(params.patch)}
    if params.node is not None:
        out["node"] = _one(params.node)
    return out


def _etcd_put(params: FaultParams) -> Doc:
    assert isinstance(params, EtcdPutFault)
    return {"key": params.key, "value": params.value}


_PARAMS: Mapping[FaultKind, Callable[[FaultParams], Any]] = {
    FaultKind.KILL: _node_fault,
    FaultKind.RESTART: _node_fault,
    FaultKind.KILL_AGENT: _node_fault,
    FaultKind.KILL_POSTGRES: _node_fault,
    FaultKind.PAUSE: _pause,
    FaultKind.PARTITION: _partition,
    FaultKind.HEAL: _heal,
    FaultKind.CLOCK: _clock,
    FaultKind.ETCD: _etcd,
    FaultKind.LOSS: _loss,
    FaultKind.LATENCY: _latency_fault,
    FaultKind.DISK_FULL: _disk_full,
    FaultKind.SWITCHOVER: _switchover,
    FaultKind.FAILOVER: _failover,
    FaultKind.CONFIG: _config,
    FaultKind.ETCD_PUT: _etcd_put,
}
