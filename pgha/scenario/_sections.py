# The sections that describe conditions rather than the cluster: the network (latency, datacenters,
# loss, etcd pre-vote), per-host clocks, the workload, the checks and the exploration space. Hosts
# named here must exist; datacenters may be given per node (cluster.nodes[].datacenter) or per
# datacenter (network.datacenters), and both are merged into one consistent placement.
"""The `network:`, `clocks:`, `workload:`, `checks:` and `explore:` sections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pgha.located.tree import Node, boolean, choice, integer, items, mapping, problem, suggest
from pgha.located.units import Sign, duration_s, finite_number, fraction, median_p99_s, rate_per_s
from pgha.scenario._kinds import KIND_SYNONYMS, KIND_WORDS
from pgha.scenario._model import (
    ChecksSpec,
    ClockSpec,
    ExploreSpec,
    FaultKind,
    FrozenDict,
    HAProxySpec,
    LatencySpec,
    NetworkSpec,
    NodeSpec,
    ParamRange,
    PostgresSpec,
    WorkloadSpec,
    WorkloadVia,
)
from pgha.scenario._targets import Scope, names

NETWORK_KEYS = (
    "latency",
    "datacenters",
    "inter_dc_latency",
    "loss",
    "etcd_pre_vote",
    "down_hosts",
)
DOWN_HOSTS = ("silent", "unreachable")
CLOCK_SPEC_KEYS = ("offset", "drift_ppm")
WORKLOAD_KEYS = ("rate", "via", "clients", "timeout", "haproxy")
HAPROXY_KEYS = ("check_interval", "fall", "rise")
# `postgres:` keys and the PostgresSpec fields they set (the dumper writes them back the same way)
POSTGRES_FIELDS: Mapping[str, str] = {
    "start": "start_s",
    "crash_recovery": "crash_recovery_s",
    "stop": "stop_fast_s",
    "stop_immediate": "stop_immediate_s",
    "checkpoint": "checkpoint_s",
    "promote": "promote_s",
}
POSTGRES_KEYS = tuple(POSTGRES_FIELDS)
CHECKS_KEYS = (
    "no_split_brain",
    "no_lost_acknowledged_writes",
    "max_lost_writes",
    "failover_within",
    "eventually_healthy",
    "operator_requests_succeed",
)
EXPLORE_KEYS = ("faults", "max_faults", "window", "params")


def _latency(node: Node, sign: Sign) -> LatencySpec:
    median_s, p99_s = median_p99_s(node, sign)
    return LatencySpec(median_s=median_s, p99_s=p99_s)


def network(node: Node | None, hosts: Scope, nodes: tuple[NodeSpec, ...]) -> NetworkSpec:
    """The `network:` section, with the datacenters of `nodes` merged in."""
    fields = mapping(node if node is not None else Node({}, 1, "network"), NETWORK_KEYS)
    latency, dcs, inter_dc, loss, pre_vote, down = (fields.get(key) for key in NETWORK_KEYS)
    default = NetworkSpec()
    return NetworkSpec(
        latency=default.latency if latency is None else _latency(latency, Sign.NON_NEGATIVE),
        datacenters=_merge_datacenters(_datacenters(dcs, hosts), nodes, dcs),
        inter_dc_latency=None if inter_dc is None else _latency(inter_dc, Sign.NON_NEGATIVE),
        loss=0.0 if loss is None else fraction(loss, allow_zero=True),
        etcd_pre_vote=True if pre_vote is None else boolean(pre_vote),
        down_hosts=default.down_hosts if down is None else choice(down, DOWN_HOSTS),
    )


def _datacenters(node: Node | None, hosts: Scope) -> Mapping[str, tuple[str, ...]]:
    if node is None:
        return FrozenDict()
    if not isinstance(node.value, dict):
        raise problem(node, "a mapping of datacenter names to lists of hosts")
    placed: dict[str, str] = {}
    out: dict[str, tuple[str, ...]] = {}
    for dc, child in node.value.items():
        out[dc] = names(child, hosts)
        for host in out[dc]:
            if host in placed:
                raise problem(child, f"each host in one datacenter ({host} is in {placed[host]})")
            placed[host] = dc
    return FrozenDict(out)


def _merge_datacenters(
    given: Mapping[str, tuple[str, ...]], nodes: tuple[NodeSpec, ...], where: Node | None
) -> Mapping[str, tuple[str, ...]]:
    merged = {dc: list(hosts) for dc, hosts in given.items()}
    placed = {host: dc for dc, hosts in given.items() for host in hosts}
    for spec in nodes:
        if spec.datacenter is None:
            continue
        if placed.get(spec.name, spec.datacenter) != spec.datacenter:
            assert where is not None  # only network.datacenters can disagree with a node
            expected = f"{spec.name} in one datacenter (cluster says {spec.datacenter})"
            raise problem(where, expected)
        if spec.name not in placed:
            merged.setdefault(spec.datacenter, []).append(spec.name)
    return FrozenDict({dc: tuple(hosts) for dc, hosts in merged.items()})


def place_nodes(
    nodes: tuple[NodeSpec, ...], datacenters: Mapping[str, tuple[str, ...]]
) -> tuple[NodeSpec, ...]:
    """Nodes with their datacenter filled in from the network's datacenters."""
    placed = {host: dc for dc, hosts in datacenters.items() for host in hosts}
    return tuple(replace(spec, datacenter=placed.get(spec.name)) for spec in nodes)


def clocks(node: Node | None, hosts: Scope) -> Mapping[str, ClockSpec]:
    """The `clocks:` section: host -> offset and drift."""
    if node is None:
        return FrozenDict()
    if not isinstance(node.value, dict):
        raise problem(node, "a mapping of host names to {offset, drift_ppm}")
    out: dict[str, ClockSpec] = {}
    for host, child in node.value.items():
        if host not in hosts.names:
            expected = f"a host name ({', '.join(hosts.names)})"
            raise problem(Node(host, child.line, child.field), expected, suggest(host, hosts.names))
        fields = mapping(child, CLOCK_SPEC_KEYS)
        offset, drift = fields.get("offset"), fields.get("drift_ppm")
        out[host] = ClockSpec(
            offset_s=0.0 if offset is None else duration_s(offset, Sign.ANY),
            drift_ppm=0.0 if drift is None else finite_number(drift, "a drift in ppm (a number)"),
        )
    return FrozenDict(out)


def workload(node: Node | None, node_count: int) -> WorkloadSpec | None:
    """The `workload:` section, or None without writes."""
    if node is None:
        return None
    fields = mapping(node, WORKLOAD_KEYS)
    via_node, clients_node, timeout = (fields.get(key) for key in ("via", "clients", "timeout"))
    via = WorkloadVia.HAPROXY
    if via_node is not None:
        via = WorkloadVia(choice(via_node, [v.value for v in WorkloadVia]))
    clients = node_count if via is WorkloadVia.DIRECT else 1
    if clients_node is not None:
        clients = integer(clients_node, 1)
        if via is WorkloadVia.DIRECT and clients > node_count:
            raise problem(clients_node, f"at most one client per node ({node_count}) with direct")
    return WorkloadSpec(
        rate_per_s=rate_per_s(fields.required("rate", "a rate such as 10/s")),
        via=via,
        clients=clients,
        timeout_s=5.0 if timeout is None else duration_s(timeout, Sign.POSITIVE),
        haproxy=haproxy(fields.get("haproxy")),
    )


def haproxy(node: Node | None) -> HAProxySpec:
    """`workload.haproxy`: HAProxy's check interval, fall and rise (Patroni's docs by default)."""
    if node is None:
        return HAProxySpec()
    fields = mapping(node, HAPROXY_KEYS)
    interval, fall, rise = (fields.get(key) for key in HAPROXY_KEYS)
    default = HAProxySpec()
    return HAProxySpec(
        check_interval_s=(
            default.check_interval_s if interval is None else duration_s(interval, Sign.POSITIVE)
        ),
        fall=default.fall if fall is None else integer(fall, 1),
        rise=default.rise if rise is None else integer(rise, 1),
    )


def postgres(node: Node | None) -> PostgresSpec:
    """The `postgres:` section: the simulated server's operation times (durations >= 0)."""
    default = PostgresSpec()
    if node is None:
        return default
    fields = mapping(node, POSTGRES_KEYS)
    values = {
        name: getattr(default, name) if child is None else duration_s(child, Sign.NON_NEGATIVE)
        for name, child in ((name, fields.get(key)) for key, name in POSTGRES_FIELDS.items())
    }
    return PostgresSpec(**values)


def checks(node: Node | None) -> ChecksSpec:
    """The `checks:` section; null switches a timed check off."""
    if node is None:
        return ChecksSpec()
    fields = mapping(node, CHECKS_KEYS)
    split, lost, bound, failover, healthy, operator = (fields.get(key) for key in CHECKS_KEYS)
    return ChecksSpec(
        no_split_brain=True if split is None else boolean(split),
        no_lost_acknowledged_writes=True if lost is None else boolean(lost),
        max_lost_writes=None if _off(bound) else integer(_on(bound), 0),
        failover_within_s=None if _off(failover) else duration_s(_on(failover), Sign.POSITIVE),
        eventually_healthy_s=None if _off(healthy) else duration_s(_on(healthy), Sign.POSITIVE),
        operator_requests_succeed=False if operator is None else boolean(operator),
    )


def _off(node: Node | None) -> bool:
    return node is None or node.value is None


def _on(node: Node | None) -> Node:
    assert node is not None  # called only after _off said no
    return node


def explore(node: Node | None, run_s: float) -> ExploreSpec | None:
    """The `explore:` section (parsed and checked here; the explorer uses it)."""
    if node is None:
        return None
    fields = mapping(node, EXPLORE_KEYS)
    max_faults, window, params = (fields.get(key) for key in ("max_faults", "window", "params"))
    return ExploreSpec(
        faults=_kinds(fields.required("faults", "a list of fault kinds")),
        max_faults=3 if max_faults is None else integer(max_faults, 1),
        window_s=(0.0, run_s) if window is None else _window(window, run_s),
        params=_params(params),
    )


def _kinds(node: Node) -> tuple[FaultKind, ...]:
    kinds: list[FaultKind] = []
    for item in items(node, "a non-empty list of fault kinds"):
        word = choice(item, [*KIND_WORDS, *KIND_SYNONYMS])
        kind = FaultKind(KIND_SYNONYMS.get(word, word))
        if kind in kinds:
            raise problem(item, "each fault kind once")
        kinds.append(kind)
    return tuple(kinds)


def _window(node: Node, end_s: float) -> tuple[float, float]:
    expected = f"[start, end] with 0 <= start < end <= the duration ({end_s:g}s)"
    bounds = items(node, expected)
    if len(bounds) != 2:
        raise problem(node, expected)
    start_s, stop_s = (duration_s(bound, Sign.NON_NEGATIVE) for bound in bounds)
    if not start_s < stop_s <= end_s:
        raise problem(node, expected)
    return start_s, stop_s


def _params(node: Node | None) -> Mapping[str, ParamRange]:
    if node is None:
        return FrozenDict()
    if not isinstance(node.value, dict):
        raise problem(node, "a mapping of parameter names to [low, high] ranges")
    return FrozenDict({key: _range(child) for key, child in node.value.items()})


def _range(node: Node) -> ParamRange:
    expected = "[low, high]: two numbers or durations with low <= high"
    bounds = items(node, expected)
    if len(bounds) != 2:
        raise problem(node, expected)
    low, high = (_bound(bound, expected) for bound in bounds)
    if low > high:
        raise problem(node, expected)
    return ParamRange(low=low, high=high)


def _bound(node: Node, expected: str) -> float:
    if isinstance(node.value, str):
        return duration_s(node, Sign.ANY)
    return finite_number(node, expected)
