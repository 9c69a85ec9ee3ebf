# The scenario as frozen values. Both worlds (sim and chaos) and the explorer read these and never
# YAML. Targets stay symbolic: a role such as `primary` is resolved by the world when the fault
# fires, so the same file means the same thing in both worlds. Every time carries its unit (`_s`).
"""Frozen values of a parsed scenario: cluster, config, network, workload, faults, checks."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pgha.engine.config import DynamicConfig
from pgha.engine.values import Tags

# Re-exported: pgha.agent's configuration values and older imports take them from here.
from pgha.scenario._values import FrozenDict as FrozenDict
from pgha.scenario._values import Target as Target
from pgha.scenario._values import TargetRole as TargetRole


def _empty() -> Mapping[str, Any]:
    return FrozenDict()


# ---------------------------------------------------------------- fault parameters


class FaultKind(enum.Enum):
    """Fault kinds; the value is the YAML key."""

    KILL = "kill"
    RESTART = "restart"
    KILL_AGENT = "kill_agent"
    KILL_POSTGRES = "kill_postgres"
    PAUSE = "pause"
    PARTITION = "partition"
    HEAL = "heal"
    CLOCK = "clock"
    ETCD = "etcd"
    LOSS = "loss"
    LATENCY = "latency"
    DISK_FULL = "disk_full"
    SWITCHOVER = "switchover"
    FAILOVER = "failover"
    CONFIG = "config"
    ETCD_PUT = "etcd_put"


class PauseWhat(enum.Enum):
    """What a pause freezes (SIGSTOP)."""

    NODE = "node"
    AGENT = "agent"
    POSTGRES = "postgres"


class EtcdAction(enum.Enum):
    """What an etcd fault does to its member."""

    KILL = "kill"
    PAUSE = "pause"


class PartitionForm(enum.Enum):
    """The shape of a partition."""

    ISOLATE = "isolate"
    GROUPS = "groups"
    ONE_WAY = "one_way"
    BRIDGE = "bridge"


@dataclass(frozen=True, slots=True, kw_only=True)
class KillFault:
    """The node's machine dies (PostgreSQL, agent and co-located etcd); `for` boots it again."""

    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartFault:
    """The node's machine is started again (or rebooted when running)."""

    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class KillAgentFault:
    """Only the agent process dies; `for` starts it again."""

    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class KillPostgresFault:
    """Only PostgreSQL crashes, once; the agent decides what happens next."""

    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseFault:
    """SIGSTOP on the whole node, the agent or the postmaster; `for` sends SIGCONT."""

    target: Target
    what: PauseWhat = PauseWhat.NODE


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge:
    """Hosts in `a` and `b` cannot reach each other; the `bridge` hosts reach both."""

    a: Target
    b: Target
    bridge: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionFault:
    """A network partition; exactly one of the four forms is set."""

    isolate: Target | None = None
    groups: tuple[tuple[Target, ...], ...] | None = None
    one_way: tuple[Target, Target] | None = None  # (from, to): only from -> to messages drop
    bridge: Bridge | None = None

    def __post_init__(self) -> None:
        forms = (self.isolate, self.groups, self.one_way, self.bridge)
        if sum(form is not None for form in forms) != 1:
            raise ValueError("a PartitionFault has exactly one form")

    @property
    def form(self) -> PartitionForm:
        """Which of the four forms this partition has."""
        if self.isolate is not None:
            return PartitionForm.ISOLATE
        if self.groups is not None:
            return PartitionForm.GROUPS
        if self.one_way is not None:
            return PartitionForm.ONE_WAY
        return PartitionForm.BRIDGE


@dataclass(frozen=True, slots=True, kw_only=True)
class HealFault:
    """Every partition, loss and latency fault still active ends now."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockFault:
    """Set a host's wall-clock offset and/or drift (undone by `for`), or make it jump once."""

    target: Target
    offset_s: float | None = None
    drift_ppm: float | None = None
    jump_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdFault:
    """Kill or pause one etcd member; `for` restarts or resumes it."""

    member: Target
    action: EtcdAction = EtcdAction.KILL


@dataclass(frozen=True, slots=True, kw_only=True)
class LossFault:
    """Drop this fraction of the messages to and from the targets."""

    targets: Target
    rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyFault:
    """Messages to and from the targets take this long (median, 99th percentile)."""

    targets: Target
    median_s: float
    p99_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskFullFault:
    """The node's data disk is full (writes and WAL fail); `for` frees it."""

    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchoverFault:
    """Operator switchover, optionally naming the leader, the candidate and a scheduled time."""

    leader: Target | None = None
    candidate: Target | None = None
    scheduled_at_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverFault:
    """Operator failover to a candidate."""

    candidate: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigFault:
    """An operator's `PATCH /config`: `patch` is the JSON merge patch as sent (a FrozenDict;
    lists are tuples), to the REST API of `node` first (None: the nodes in order). `for` sends
    the patch that restores the document the change replaced."""

    patch: Mapping[str, Any]
    node: Target | None = None


# The keys under the cluster's prefix that an `etcd_put` may write (besides `members/<name>`).
CLUSTER_KEYS = (
    "initialize",
    "leader",
    "sync",
    "failover",
    "config",
    "status",
    "failsafe",
    "history",
)
MEMBERS_PREFIX = "members/"


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdPutFault:
    """A raw write of one cluster key, as `etcdctl put` does: `value` is the bytes (as UTF-8
    text), with no lease and no compare. `for` puts back the value it replaced (on its lease,
    while that lives), or deletes the key when there was none."""

    key: str  # one of CLUSTER_KEYS, or members/<name>
    value: str


FaultParams = (
    KillFault
    | RestartFault
    | KillAgentFault
    | KillPostgresFault
    | PauseFault
    | PartitionFault
    | HealFault
    | ClockFault
    | EtcdFault
    | LossFault
    | LatencyFault
    | DiskFullFault
    | SwitchoverFault
    | FailoverFault
    | ConfigFault
    | EtcdPutFault
)

PARAMS_TYPE: Mapping[FaultKind, type[FaultParams]] = MappingProxyType(
    {
        FaultKind.KILL: KillFault,
        FaultKind.RESTART: RestartFault,
        FaultKind.KILL_AGENT: KillAgentFault,
        FaultKind.KILL_POSTGRES: KillPostgresFault,
        FaultKind.PAUSE: PauseFault,
        FaultKind.PARTITION: PartitionFault,
        FaultKind.HEAL: HealFault,
        FaultKind.CLOCK: ClockFault,
        FaultKind.ETCD: EtcdFault,
        FaultKind.LOSS: LossFault,
        FaultKind.LATENCY: LatencyFault,
        FaultKind.DISK_FULL: DiskFullFault,
        FaultKind.SWITCHOVER: SwitchoverFault,
        FaultKind.FAILOVER: FailoverFault,
        FaultKind.CONFIG: ConfigFault,
        FaultKind.ETCD_PUT: EtcdPutFault,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpec:
    """One timed fault: `params` is the value class of `kind` (see PARAMS_TYPE)."""

    at_s: float
    kind: FaultKind
    params: FaultParams
    for_s: float | None = None
    label: str | None = None
    line: int = 0  # 1-based line of the entry in its file; 0 when built in code

    def __post_init__(self) -> None:
        if not isinstance(self.params, PARAMS_TYPE[self.kind]):
            raise ValueError(f"{self.kind.value} takes {PARAMS_TYPE[self.kind].__name__}")

    @property
    def end_s(self) -> float | None:
        """When the fault is undone (at + for), or None when it is not."""
        return None if self.for_s is None else self.at_s + self.for_s

    @property
    def undone_at_end(self) -> bool:
        """Whether the end of the run undoes it when it has no `for` (not for written data)."""
        return self.for_s is not None or self.kind not in STAYS_WITHOUT_FOR

    def label_for(self, hosts: tuple[str, ...]) -> str:
        """The history's label: the fault's own, else its kind and what it hit."""
        if self.label is not None:
            return self.label
        what = ",".join(hosts)
        if isinstance(self.params, EtcdPutFault):
            what = self.params.key
        elif isinstance(self.params, ConfigFault):
            what = " ".join(filter(None, (",".join(self.params.patch), what)))
        return f"{self.kind.value} {what}".strip()


# A change of data (a `config` change, an `etcd_put`) stays when it has no `for`: the end of the
# run heals the network and the machines, not what an operator wrote; the cluster must cope.
STAYS_WITHOUT_FOR = frozenset({FaultKind.CONFIG, FaultKind.ETCD_PUT})


# ---------------------------------------------------------------- the other sections


class EtcdPlacement(enum.Enum):
    """Where etcd members run: hosts of their own, or member i on database node i."""

    OWN_HOSTS = "own_hosts"
    ON_NODES = "on_nodes"


class WorkloadVia(enum.Enum):
    """How clients reach the database: through HAProxy, or each to its own node."""

    HAPROXY = "haproxy"
    DIRECT = "direct"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """One database node (PostgreSQL and the agent on one host)."""

    name: str
    tags: Tags = field(default_factory=Tags)
    datacenter: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySpec:
    """One-way message latency: median and 99th percentile, in seconds."""

    median_s: float
    p99_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSpec:
    """Network conditions from the start of the run."""

    latency: LatencySpec = field(default_factory=lambda: LatencySpec(median_s=0.001, p99_s=0.010))
    datacenters: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    inter_dc_latency: LatencySpec | None = None
    loss: float = 0.0
    etcd_pre_vote: bool = True
    # A killed host: "silent" (a request to it waits out its timeout, as for a crashed machine on a
    # LAN) or "unreachable" (it fails at once, as for a killed container whose address is gone).
    down_hosts: str = "silent"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSpec:
    """A host's wall clock from the start: offset from true time and drift."""

    offset_s: float = 0.0
    drift_ppm: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresSpec:
    """How long PostgreSQL's operations take in the simulator (the real world takes what it
    takes). The defaults model a server with some data and shared buffers to flush; a small
    database in a container starts, stops and promotes several times faster (measured by
    benchmarks/chaos_failover.py)."""

    start_s: float = 1.0
    crash_recovery_s: float = 1.0  # added to a start after an unclean stop
    stop_fast_s: float = 0.5
    stop_immediate_s: float = 0.1
    checkpoint_s: float = 0.2  # the CHECKPOINT a graceful demote issues first
    promote_s: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class HAProxySpec:
    """HAProxy's health checks of the agents' `/primary`: every `check_interval_s`; a server is
    marked down after `fall` failed checks in a row and up after `rise` good ones. The defaults
    are the haproxy.cfg of Patroni's documentation (inter 3s fall 3 rise 2)."""

    check_interval_s: float = 3.0
    fall: int = 3
    rise: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSpec:
    """Clients writing unique ids; `rate_per_s` is per client."""

    rate_per_s: float
    via: WorkloadVia = WorkloadVia.HAPROXY
    clients: int = 1
    timeout_s: float = 5.0
    haproxy: HAProxySpec = field(default_factory=HAProxySpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChecksSpec:
    """The invariants to check; None switches a timed check off."""

    no_split_brain: bool = True
    no_lost_acknowledged_writes: bool = True
    max_lost_writes: int | None = None
    failover_within_s: float | None = None
    eventually_healthy_s: float | None = None
    operator_requests_succeed: bool = False  # every switchover / failover accepted and answered


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamRange:
    """An inclusive range an explorer draws a parameter from (seconds for durations)."""

    low: float
    high: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExploreSpec:
    """The space a randomized search draws fault schedules from."""

    faults: tuple[FaultKind, ...]
    max_faults: int = 3
    window_s: tuple[float, float] = (0.0, 0.0)
    params: Mapping[str, ParamRange] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A whole scenario, as both worlds run it."""

    name: str
    description: str = ""
    seed: int = 0
    duration_s: float
    nodes: tuple[NodeSpec, ...]
    etcd: tuple[str, ...]
    etcd_placement: EtcdPlacement = EtcdPlacement.OWN_HOSTS
    config: DynamicConfig = field(default_factory=DynamicConfig)
    config_raw: Mapping[str, Any] = field(default_factory=_empty)
    network: NetworkSpec = field(default_factory=NetworkSpec)
    clocks: Mapping[str, ClockSpec] = field(default_factory=_empty)
    workload: WorkloadSpec | None = None
    postgres: PostgresSpec = field(default_factory=PostgresSpec)
    faults: tuple[FaultSpec, ...] = ()
    checks: ChecksSpec = field(default_factory=ChecksSpec)
    explore: ExploreSpec | None = None
    source: str = "<string>"

    @property
    def node_names(self) -> tuple[str, ...]:
        """The database nodes' names, in order."""
        return tuple(node.name for node in self.nodes)

    def config_json(self) -> dict[str, Any]:
        """`config_raw` as plain dicts, ready for `json.dumps` (the history's run_start)."""
        return {key: _plain(value) for key, value in self.config_raw.items()}


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value
