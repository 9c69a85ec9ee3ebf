"""An in-memory cluster for the agent loop: fake DCS, PostgreSQL, watchdog and peers, virtual time.

Every node runs the real `pgha.loop.agent_steps` with the real engine; this module only answers the
loop's requests. Time is virtual and jumps to the next thing that can happen (a node's wake time, a
lease expiry, a watchdog deadline), as in trio's autojump clock, so scenario times are exact.

The world, kept deliberately simple:
- DCS: leader key on a lease of ttl (atomic create, compare-and-set on its version; renewal
  refreshes the lease and keeps the version, like an etcd3 lease keepalive), member keys with ttl,
  `/sync` and `/failover` with versions. A node cut from the DCS gets DcsError after retry_timeout
  of virtual time on every call. Watchers wake when the leader key is created, deleted or expires.
- PostgreSQL: timeline, WAL end, its timeline history; promote bumps the timeline and records the
  switch LSN; a replica streams from its upstream (WAL applied before every step) only while its WAL
  is a prefix of the upstream's history, as PostgreSQL requires.
- Peers: `GET /patroni` answered from the other agent's published status with its live PostgreSQL,
  through `pgha.health.patroni_body` and `peer_status_from_patroni` (JSON round trip); a dead agent
  is unreachable (after `peer_timeout_s` of virtual time).
- Watchdog: fires (and kills the node) when armed and not kicked within its timeout.
- Actions take no virtual time except a DCS call from a cut node and a probe of an unreachable peer;
  an observation costs retry_timeout on a cut node only when it reads the DCS (`reread_dcs`).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

from pgha import health
from pgha.engine.actions import (
    AcquireInitialize,
    AcquireLock,
    Action,
    AppendHistory,
    Callback,
    ClearFailover,
    DeleteInitialize,
    DemoteMode,
    FetchPeerStatus,
    ReleaseLock,
    RenewLock,
    UpdateMember,
    WriteConfig,
    WriteFailsafe,
    WriteInitialize,
    WriteStatus,
    WriteSync,
)
from pgha.engine.config import DynamicConfig
from pgha.engine.decision import Reason
from pgha.engine.state import NodeState
from pgha.engine.values import (
    ClusterView,
    FailoverKey,
    FailsafeHeartbeat,
    Failure,
    HistoryEntry,
    LeaderKey,
    LocalConfig,
    LockResult,
    Member,
    MemberRole,
    PeerStatus,
    PgRun,
    PostgresState,
    Standby,
    SyncKey,
    SyncStandbyNames,
    SyncState,
)
from pgha.events import ActionsEvent, DecisionEvent
from pgha.executor import Act, AgentHalted
from pgha.loop import Emit, Observe, Publish, Sleep, agent_steps, answer_port_request
from pgha.ports import ActionFailed, DcsError, Ports
from pgha.status import AgentStatus

EPOCH_WALL = 1_700_000_000.0
BOOTSTRAP_LSN = 100
DCS_ACTIONS = (
    AcquireInitialize,
    WriteInitialize,
    DeleteInitialize,
    WriteConfig,
    AcquireLock,
    RenewLock,
    ReleaseLock,
    WriteFailsafe,
    WriteSync,
    WriteStatus,
    AppendHistory,
    ClearFailover,
    UpdateMember,
)
MAX_STEPS_PER_INSTANT = 200


class LivelockError(RuntimeError):
    """A node kept deciding at the same virtual instant: the engine never lets time pass."""


# ---------------------------------------------------------------- time


class VirtualClock:
    """True time of the harness, in seconds since the run started."""

    def __init__(self) -> None:
        self.now = 0.0


@dataclass(frozen=True)
class NodeClock:
    """One node's clocks: its monotonic clock runs at true rate from its own origin."""

    clock: VirtualClock
    mono_offset: float = 0.0

    def now_mono(self) -> float:
        return self.clock.now + self.mono_offset

    def now_wall(self) -> float:
        return EPOCH_WALL + self.clock.now


# ---------------------------------------------------------------- DCS


@dataclass
class Lease:
    holder: str
    version: int
    expires_at: float


class DcsServer:
    """The cluster's keys on one (always consistent) DCS."""

    def __init__(self, clock: VirtualClock, bootstrap_config: DynamicConfig) -> None:
        self.clock = clock
        self.bootstrap_config = bootstrap_config
        self.revision = 0
        self.initialize: str | None = None
        self.config: DynamicConfig | None = None
        self.config_version: int | None = None
        self.leader: Lease | None = None
        self.leader_epoch = 0  # bumped on every create, delete or expiry of the leader key
        self.members: dict[str, tuple[Member, float]] = {}
        self.failover: FailoverKey | None = None
        self.sync = SyncKey()
        self.history: tuple[HistoryEntry, ...] = ()
        self.status_optime: int | None = None
        self.failsafe: tuple[str, ...] | None = None
        self.cut: set[str] = set()

    @property
    def cfg(self) -> DynamicConfig:
        return self.config or self.bootstrap_config

    def bump(self) -> int:
        self.revision += 1
        return self.revision

    def expire(self) -> None:
        if self.leader is not None and self.clock.now >= self.leader.expires_at:
            self.set_leader(None)

    def set_leader(self, lease: Lease | None) -> None:
        self.leader = lease
        self.leader_epoch += 1

    def next_expiry(self) -> float | None:
        return None if self.leader is None else self.leader.expires_at

    def write_failover(self, leader: str | None = None, candidate: str | None = None) -> None:
        """What `POST /switchover` (leader set) or `/failover` (candidate only) writes."""
        self.failover = FailoverKey(leader=leader, candidate=candidate, version=self.bump())

    def view(self) -> ClusterView:
        self.expire()
        now = self.clock.now
        leader = self.leader
        return ClusterView(
            initialize=self.initialize,
            leader=None
            if leader is None
            else LeaderKey(holder=leader.holder, version=leader.version),
            members=tuple(
                m for m, until in sorted(self.members.values(), key=_by_name) if now < until
            ),
            failover=self.failover,
            sync=self.sync,
            history=self.history,
            status_optime_lsn=self.status_optime,
            failsafe=self.failsafe,
            config=self.cfg,
            config_version=self.config_version,
        )


def _by_name(item: tuple[Member, float]) -> str:
    return item[0].name


class FakeDcs:
    """One node's DCS client (the Dcs port)."""

    def __init__(self, server: DcsServer, local: LocalConfig, postgres: FakePostgres) -> None:
        self.server = server
        self.local = local
        self.postgres = postgres
        self.failing: set[str] = set()  # calls that raise DcsError even when reachable (tests)

    @property
    def name(self) -> str:
        return self.local.name

    def _reach(self, call: str) -> DcsServer:
        if self.name in self.server.cut or call in self.failing:
            raise DcsError(f"{self.name}: DCS unreachable")
        self.server.expire()
        return self.server

    def read_cluster(self) -> ClusterView:
        return self._reach("read_cluster").view()

    def acquire_initialize(self) -> bool:
        server = self._reach("acquire_initialize")
        if server.initialize is not None:
            return False
        server.initialize = ""
        return True

    def write_initialize(self, sysid: str) -> None:
        self._reach("write_initialize").initialize = sysid

    def delete_initialize(self) -> None:
        self._reach("delete_initialize").initialize = None

    def write_config(self) -> None:
        server = self._reach("write_config")
        if server.config_version is None:
            server.config, server.config_version = server.bootstrap_config, server.bump()

    def acquire_lock(self) -> LockResult:
        server = self._reach("acquire_lock")
        if server.leader is not None:
            return LockResult.CAS_FAILED
        lease = Lease(self.name, server.bump(), server.clock.now + server.cfg.ttl_s)
        server.set_leader(lease)
        return LockResult.OK

    def renew_lock(self, version: int) -> LockResult:
        server = self._reach("renew_lock")
        lease = server.leader
        if lease is None or (lease.holder, lease.version) != (self.name, version):
            return LockResult.CAS_FAILED
        lease.expires_at = server.clock.now + server.cfg.ttl_s
        return LockResult.OK

    def release_lock(self, version: int | None) -> None:
        server = self._reach("release_lock")
        lease = server.leader
        if lease is not None and lease.holder == self.name and version in (None, lease.version):
            server.set_leader(None)

    def write_sync(
        self, leader: str | None, standbys: frozenset[str], quorum: int, version: int | None
    ) -> bool:
        server = self._reach("write_sync")
        if server.sync.version != version:
            return False
        server.sync = SyncKey(
            leader=leader, standbys=standbys, quorum=quorum, version=server.bump()
        )
        return True

    def write_status(self, optime_lsn: int) -> None:
        self._reach("write_status").status_optime = optime_lsn

    def write_failsafe(self, members: tuple[str, ...]) -> None:
        self._reach("write_failsafe").failsafe = members

    def append_history(self, entry: HistoryEntry) -> None:
        server = self._reach("append_history")
        server.history = (*server.history, entry)

    def clear_failover(self, version: int) -> bool:
        server = self._reach("clear_failover")
        if server.failover is None or server.failover.version != version:
            return False
        server.failover = None
        return True

    def update_member(self, role: MemberRole) -> None:
        server = self._reach("update_member")
        pg = self.postgres
        member = Member(
            name=self.name,
            api_url=self.local.api_url,
            conn_url=self.local.conn_url,
            role=role,
            running=pg.run is PgRun.RUNNING,
            timeline=pg.timeline,
            wal_lsn=pg.wal_lsn,
            tags=self.local.tags,
        )
        server.members[self.name] = (member, server.clock.now + server.cfg.ttl_s)


# ---------------------------------------------------------------- PostgreSQL


class FakePostgres:
    """One node's PostgreSQL (the Postgres port); `others` lets it clone, rewind and stream."""

    def __init__(self, name: str, others: dict[str, FakePostgres]) -> None:
        self.name = name
        self.others = others
        self.data_present = False
        self.sysid: str | None = None
        self.run = PgRun.STOPPED
        self.in_recovery = True
        self.timeline: int | None = None
        self.wal_lsn = 0
        self.timeline_start_lsn = 0
        self.clean_shutdown = True
        self.following: str | None = None
        self.ssn = SyncStandbyNames()
        self.history: tuple[HistoryEntry, ...] = ()  # this server's own timeline history file
        self.failing: set[Failure] = set()  # long actions that fail (set by tests)
        others[name] = self

    @property
    def writable(self) -> bool:
        return self.run is PgRun.RUNNING and not self.in_recovery

    def state(self) -> PostgresState:
        return PostgresState(
            data_present=self.data_present,
            sysid=self.sysid,
            run=self.run,
            in_recovery=self.in_recovery,
            timeline=self.timeline,
            wal_lsn=self.wal_lsn,
            timeline_start_lsn=self.timeline_start_lsn,
            clean_shutdown=self.clean_shutdown,
            following=self.following,
            ssn=self.ssn,
            standbys=self._standbys(),
        )

    def _standbys(self) -> tuple[Standby, ...]:
        if not self.writable:
            return ()
        rows = (p for p in self.others.values() if p.following == self.name and p.streams())
        return tuple(
            Standby(name=p.name, sync_state=self._sync_state(p.name), flush_lsn=p.wal_lsn)
            for p in sorted(rows, key=lambda p: p.name)
        )

    def _sync_state(self, name: str) -> SyncState:
        return SyncState.SYNC if name in self.ssn.names or self.ssn.star else SyncState.ASYNC

    def _check(self, failure: Failure) -> None:
        if failure in self.failing:
            raise ActionFailed(failure)

    def _source(self, name: str | None, failure: Failure) -> FakePostgres:
        source = self.others.get(name) if name is not None else None
        if source is None or source.run is not PgRun.RUNNING:
            raise ActionFailed(failure, f"{self.name}: no running source {name}")
        return source

    def _copy_from(self, source: FakePostgres) -> None:
        self.data_present, self.sysid = True, source.sysid
        self.timeline, self.history = source.timeline, source.history
        self.wal_lsn, self.timeline_start_lsn = source.wal_lsn, source.timeline_start_lsn
        self._run_replica(source.name)

    def _run_replica(self, upstream: str | None) -> None:
        self.run, self.in_recovery, self.clean_shutdown = PgRun.RUNNING, True, True
        self.following = upstream

    def bootstrap(self) -> None:
        self._check(Failure.BOOTSTRAP)
        self.data_present, self.sysid = True, f"70000000000000{len(self.others):05d}"
        self.timeline, self.wal_lsn, self.history = 1, BOOTSTRAP_LSN, ()
        self.run, self.in_recovery, self.following = PgRun.RUNNING, False, None

    def create_replica(self, source: str | None) -> None:
        self._check(Failure.CREATE_REPLICA)
        self._copy_from(self._source(source, Failure.CREATE_REPLICA))

    def start(self, as_primary: bool) -> None:
        self._check(Failure.START)
        if not self.data_present:
            raise ActionFailed(Failure.START, f"{self.name}: no data directory")
        self.run, self.in_recovery, self.clean_shutdown = PgRun.RUNNING, not as_primary, True

    def demote(self, mode: DemoteMode) -> None:
        self._check(Failure.STOP)
        del mode  # every mode ends stopped, a replica of nobody to be, here
        self.run, self.in_recovery, self.clean_shutdown = PgRun.STOPPED, True, True
        self.following = None

    def stop(self, immediate: bool) -> None:
        self._check(Failure.STOP)
        self.run, self.clean_shutdown = PgRun.STOPPED, not immediate

    def promote(self) -> None:
        self._check(Failure.PROMOTE)
        if not (self.run is PgRun.RUNNING and self.in_recovery and self.timeline is not None):
            raise ActionFailed(Failure.PROMOTE, f"{self.name}: not a running replica")
        self.history = (
            *self.history,
            HistoryEntry(timeline=self.timeline, switch_lsn=self.wal_lsn),
        )
        self.timeline += 1
        self.timeline_start_lsn = self.wal_lsn
        self.in_recovery, self.following = False, None

    def follow(self, leader: str | None) -> None:
        self.following = leader

    def rewind(self, source: str) -> None:
        self._check(Failure.REWIND)
        self._copy_from(self._source(source, Failure.REWIND_SOURCE))  # no source: try again

    def reinit(self, source: str) -> None:
        self._check(Failure.CREATE_REPLICA)
        self._copy_from(self._source(source, Failure.CREATE_REPLICA))

    def set_sync_standby_names(self, value: SyncStandbyNames) -> None:
        self.ssn = value

    # -- the world acting on it

    def crash(self) -> None:
        self.run, self.clean_shutdown = PgRun.STOPPED, False

    def write(self, nbytes: int) -> None:
        """Client writes on a primary: WAL grows."""
        assert self.writable, f"{self.name} is not writable"
        self.wal_lsn += nbytes

    def streams(self) -> bool:
        """A running replica whose WAL is a prefix of its running upstream's history."""
        upstream = self.others.get(self.following or "")
        if self.run is not PgRun.RUNNING or not self.in_recovery or upstream is None:
            return False
        return upstream.run is PgRun.RUNNING and _is_prefix(self, upstream)

    def replicate(self) -> None:
        if self.streams():
            upstream = self.others[self.following or ""]
            self.timeline, self.history = upstream.timeline, upstream.history
            self.wal_lsn, self.timeline_start_lsn = upstream.wal_lsn, upstream.timeline_start_lsn


def _is_prefix(replica: FakePostgres, upstream: FakePostgres) -> bool:
    if replica.sysid != upstream.sysid or replica.timeline is None or upstream.timeline is None:
        return False
    if replica.timeline == upstream.timeline:
        return replica.wal_lsn <= upstream.wal_lsn
    switch = next((h for h in upstream.history if h.timeline == replica.timeline), None)
    return (
        replica.timeline < upstream.timeline
        and switch is not None
        and (replica.wal_lsn <= switch.switch_lsn)
    )


# ---------------------------------------------------------------- watchdog, peers, callbacks


class FakeWatchdog:
    def __init__(self, clock: NodeClock) -> None:
        self.clock = clock
        self.usable = True
        self.timeout_s: float | None = None
        self.last_kick_mono = 0.0

    def available(self) -> bool:
        return self.usable

    def arm(self, timeout_s: float) -> bool:
        if self.usable:
            self.timeout_s, self.last_kick_mono = timeout_s, self.clock.now_mono()
        return self.usable

    def kick(self) -> None:
        self.last_kick_mono = self.clock.now_mono()

    def disable(self) -> None:
        self.timeout_s = None

    def fires_at_mono(self) -> float | None:
        return None if self.timeout_s is None else self.last_kick_mono + self.timeout_s


class FakePeers:
    def __init__(self, harness: ClusterHarness, name: str) -> None:
        self.harness = harness
        self.name = name

    def fetch_status(self, names: tuple[str, ...]) -> tuple[PeerStatus, ...]:
        return tuple(self.harness.peer_status(n) for n in names)

    def post_failsafe(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if self.harness.accept_failsafe(n, self.name))

    def last_failsafe_heartbeat(self) -> FailsafeHeartbeat | None:
        return self.harness.nodes[self.name].heartbeat


class FakeCallbacks:
    def __init__(self) -> None:
        self.calls: list[tuple[Callback, str]] = []

    def run(self, event: Callback, role: str) -> None:
        self.calls.append((event, role))


# ---------------------------------------------------------------- nodes and the scheduler


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Park:
    until_mono: float
    watch: bool


Wait = Delay | Park


@dataclass(frozen=True)
class LogEntry:
    """One harness history line: true time, node, kind and the event itself."""

    t: float
    node: str
    kind: str
    event: object = None


@dataclass
class Node:
    name: str
    local: LocalConfig
    clock: NodeClock
    pg: FakePostgres
    dcs: FakeDcs
    watchdog: FakeWatchdog
    callbacks: FakeCallbacks
    ports: Ports
    process: Generator[Wait, None, None] | None = None
    wake_at: float = 0.0
    watch: bool = False
    parked_epoch: int = 0
    status: AgentStatus | None = None
    heartbeat: FailsafeHeartbeat | None = None
    halted: bool = False
    steps_at: tuple[float, int] = (0.0, 0)

    @property
    def alive(self) -> bool:
        return self.process is not None


@dataclass
class ClusterHarness:
    """Several agents, their fake world, and a virtual clock that jumps to the next event."""

    names: tuple[str, ...] = ("a", "b", "c")
    config: DynamicConfig = field(default_factory=DynamicConfig)
    peer_timeout_s: float = 0.0
    mono_offsets: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clock = VirtualClock()
        self.dcs = DcsServer(self.clock, self.config)
        self.pgs: dict[str, FakePostgres] = {}
        self.nodes: dict[str, Node] = {n: self._node(n) for n in self.names}
        self.log: list[LogEntry] = []
        self.overlaps: list[tuple[float, list[str]]] = []  # two writable PostgreSQL at once

    def _node(self, name: str) -> Node:
        local = LocalConfig(name=name, api_url=f"http://{name}:8008/patroni", conn_url=name)
        clock = NodeClock(self.clock, self.mono_offsets.get(name, 0.0))
        pg = FakePostgres(name, self.pgs)
        watchdog = FakeWatchdog(clock)
        callbacks = FakeCallbacks()
        dcs = FakeDcs(self.dcs, local, pg)
        ports = Ports(clock, dcs, pg, watchdog, FakePeers(self, name), callbacks)
        return Node(name, local, clock, pg, dcs, watchdog, callbacks, ports)

    @property
    def now(self) -> float:
        return self.clock.now

    # -- what tests do to the world

    def start(self, *names: str) -> None:
        """Start the agents (fresh engine state: a restarted agent remembers nothing)."""
        for name in names or self.names:
            node = self.nodes[name]
            node.process = self._drive(node)
            node.wake_at, node.watch, node.halted = self.now, False, False
            self._record(name, "agent_started")

    def kill(self, name: str, unreplicated_wal: int = 0) -> None:
        """The machine dies: the agent stops and PostgreSQL crashes, after `unreplicated_wal`
        bytes were written on it that no replica received."""
        node = self.nodes[name]
        if unreplicated_wal:
            node.pg.write(unreplicated_wal)
        node.pg.crash()
        self._stop_agent(node, "killed")

    def _stop_agent(self, node: Node, kind: str) -> None:
        node.process, node.status, node.heartbeat = None, None, None
        node.watchdog.disable()
        self._record(node.name, kind)

    def write(self, name: str, nbytes: int) -> None:
        self.nodes[name].pg.write(nbytes)
        self.replicate()

    def cut_dcs(self, name: str) -> None:
        self.dcs.cut.add(name)
        self._record(name, "dcs_cut")

    def heal_dcs(self, name: str) -> None:
        self.dcs.cut.discard(name)
        self._record(name, "dcs_healed")

    # -- what tests read

    def primaries(self) -> list[str]:
        """Nodes whose PostgreSQL really accepts writes."""
        return sorted(n for n, pg in self.pgs.items() if pg.writable)

    def events(self, node: str | None = None, kind: str | None = None) -> list[LogEntry]:
        return [e for e in self.log if node in (None, e.node) and kind in (None, e.kind)]

    def decisions(self, node: str) -> list[tuple[float, DecisionEvent]]:
        out = []
        for entry in self.events(node, "decision"):
            assert isinstance(entry.event, DecisionEvent)
            out.append((entry.t, entry.event))
        return out

    def first(self, node: str, reason: Reason, after: float = 0.0) -> float:
        """True time of the node's first decision with `reason` at or after `after`."""
        return next(t for t, d in self.decisions(node) if d.reason is reason and t >= after)

    def ran(self, node: str, action_type: type[Any], after: float = 0.0) -> list[float]:
        """True times at which the node ran an action of this type."""
        return [
            e.t
            for e in self.events(node, "actions")
            if e.t >= after
            and isinstance(e.event, ActionsEvent)
            and any(isinstance(a, action_type) for a in e.event.ran)
        ]

    # -- peers (the REST API of the other agents)

    def peer_status(self, name: str) -> PeerStatus:
        node = self.nodes.get(name)
        if node is None or not node.alive:
            return health.peer_status_from_patroni(name, None)
        status = replace(node.status or AgentStatus(name=name), postgres=node.pg.state())
        body = json.loads(json.dumps(health.patroni_body(status, node.clock.now_mono())))
        return health.peer_status_from_patroni(name, body)

    def accept_failsafe(self, name: str, leader: str) -> bool:
        node = self.nodes.get(name)
        if node is None or not node.alive or node.pg.writable:
            return False
        node.heartbeat = FailsafeHeartbeat(leader=leader, received_mono=node.clock.now_mono())
        return True

    # -- the scheduler

    def run_until(self, t_end: float) -> None:
        """Run every node until true time `t_end` (all events at `t_end` included)."""
        while True:
            self._settle()
            node = self._due()
            if node is not None:
                self._resume(node)
                continue
            t_next = min(self._next_times(), default=t_end)
            if t_next > t_end:
                self.clock.now = t_end
                return
            self.clock.now = max(t_next, self.now)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def _settle(self) -> None:
        self.dcs.expire()
        self.replicate()
        for node in self.nodes.values():
            fires = node.watchdog.fires_at_mono()
            if node.alive and fires is not None and node.clock.now_mono() >= fires:
                node.pg.crash()
                self._stop_agent(node, "watchdog_fired")
            if node.alive and node.watch and node.parked_epoch != self.dcs.leader_epoch:
                node.wake_at, node.watch = min(node.wake_at, self.now), False

    def replicate(self) -> None:
        for _ in self.pgs:  # enough rounds for any cascade
            for pg in self.pgs.values():
                pg.replicate()

    def _due(self) -> Node | None:
        due = [n for n in self.nodes.values() if n.alive and n.wake_at <= self.now]
        return min(due, key=lambda n: (n.wake_at, n.name), default=None)

    def _next_times(self) -> list[float]:
        times = [n.wake_at for n in self.nodes.values() if n.alive]
        expiry = self.dcs.next_expiry()
        times += [] if expiry is None else [expiry]
        for node in self.nodes.values():
            fires = node.watchdog.fires_at_mono()
            if node.alive and fires is not None:
                times.append(fires - node.clock.mono_offset)
        return times

    def _resume(self, node: Node) -> None:
        assert node.process is not None
        try:
            wait = next(node.process)
        except StopIteration:
            node.process = None
            return
        if isinstance(wait, Delay):
            node.wake_at, node.watch = self.now + wait.seconds, False
        else:
            node.wake_at = wait.until_mono - node.clock.mono_offset
            node.watch, node.parked_epoch = wait.watch, self.dcs.leader_epoch
        writable = self.primaries()
        if len(writable) > 1:
            self.overlaps.append((self.now, writable))

    def _count_step(self, node: Node) -> None:
        at, count = node.steps_at
        count = count + 1 if at == self.now else 1
        node.steps_at = (self.now, count)
        if count > MAX_STEPS_PER_INSTANT:
            raise LivelockError(f"{node.name}: {count} steps at t={self.now}")

    def _latency(self, node: Node, request: object) -> float:
        cut = node.name in self.dcs.cut
        if isinstance(request, Observe):  # a reused view costs no DCS read
            return self.config.retry_timeout_s if cut and request.reread_dcs else 0.0
        if not isinstance(request, Act):
            return 0.0
        action: Action = request.action
        if isinstance(action, DCS_ACTIONS):
            return self.config.retry_timeout_s if cut else 0.0
        if isinstance(action, FetchPeerStatus):
            dead = any(not self._reachable(n) for n in action.members)
            return self.peer_timeout_s if dead else 0.0
        return 0.0

    def _reachable(self, name: str) -> bool:
        node = self.nodes.get(name)
        return node is not None and node.alive

    def _drive(self, node: Node) -> Generator[Wait, None, None]:
        steps = agent_steps(node.local, NodeState(name=node.name))
        request: Any = next(steps)
        while True:
            delay = self._latency(node, request)
            if delay:
                yield Delay(delay)
            if isinstance(request, Sleep):
                yield Park(request.until_mono, request.watch)
                request = steps.send(None)
                continue
            try:
                answer = self._answer(node, request)
            except AgentHalted:
                node.halted = True
                self._stop_agent(node, "halted")
                return
            request = steps.send(answer)

    def _answer(self, node: Node, request: Any) -> Any:
        if isinstance(request, Emit):
            kind = "decision" if isinstance(request.event, DecisionEvent) else "actions"
            self._record(node.name, kind, request.event)
            return None
        if isinstance(request, Publish):
            node.status = request.status
            return None
        if isinstance(request, Observe):
            self._count_step(node)
        return answer_port_request(request, node.ports)

    def _record(self, node: str, kind: str, event: object = None) -> None:
        self.log.append(LogEntry(self.now, node, kind, event))


def timeline(harness: ClusterHarness, node: str) -> list[tuple[float, str]]:
    """(true time, reason) of a node's decisions, for assertion messages."""
    return [(t, d.reason.value) for t, d in harness.decisions(node)]
