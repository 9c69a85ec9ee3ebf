# Safety rule: a decision is a pure function of what one node observed. Everything it may depend on
# is in these frozen values: the node's own PostgreSQL, its view of the DCS (with key versions, so a
# write can be a compare-and-set on the snapshot the decision used: bug zoo 4), its peers' answers,
# and `now_mono` from its own monotonic clock. Timestamps from other machines are never compared
# with `now_mono` (docs/patroni-rules.md §2.8). LSNs are byte positions as ints; timelines are ints.
"""Observation values: what one node sees at one step of its loop."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pgha.engine.config import DynamicConfig


class LockResult(enum.Enum):
    """Outcome of the leader-key operation issued in the previous step."""

    OK = "ok"
    CAS_FAILED = "cas_failed"  # the key is absent or owned by someone else: not a DCS error
    DCS_ERROR = "dcs_error"  # the DCS did not answer within retry_timeout


class PgRun(enum.Enum):
    """Whether the postmaster is up, as seen by the node."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"


class MemberRole(enum.Enum):
    """Role a member publishes in its `members/<name>` key."""

    PRIMARY = "primary"
    REPLICA = "replica"
    UNINITIALIZED = "uninitialized"


class SyncState(enum.Enum):
    """`pg_stat_replication.sync_state` of one standby, as the primary sees it."""

    ASYNC = "async"
    POTENTIAL = "potential"
    SYNC = "sync"
    QUORUM = "quorum"


class Failure(enum.Enum):
    """A long action of the previous step that failed, reported back by the shell."""

    BOOTSTRAP = "bootstrap"
    CREATE_REPLICA = "create_replica"
    REWIND = "rewind"  # pg_rewind failed against a source that answers: not tried again
    # pg_rewind could not use its source (unknown, down or unreachable, before or during the run):
    # tried again next cycle, as Patroni's Rewind.execute does ("primary became unreachable")
    REWIND_SOURCE = "rewind_source"
    PROMOTE = "promote"  # includes a non-zero pre_promote callback
    START = "start"
    STOP = "stop"
    WATCHDOG = "watchdog"  # the watchdog device could not be armed


@dataclass(frozen=True, slots=True, kw_only=True)
class Tags:
    """Member tags (docs/patroni-rules.md, feature 15)."""

    nofailover: bool = False
    failover_priority: int = 1
    noloadbalance: bool = False
    clonefrom: bool = False
    replicatefrom: str | None = None
    nosync: bool = False
    nostream: bool = False

    @property
    def can_failover(self) -> bool:
        """False for nofailover or failover_priority <= 0."""
        return not self.nofailover and self.failover_priority > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One `members/<name>` key."""

    name: str
    api_url: str = ""
    conn_url: str = ""
    role: MemberRole = MemberRole.REPLICA
    running: bool = True
    timeline: int | None = None
    wal_lsn: int | None = None
    tags: Tags = field(default_factory=Tags)
    checkpoint_after_promote_pending: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderKey:
    """The `leader` key: holder and the version a compare-and-set must match.

    `leased` False: the key has no lease (etcd lease 0), so it never expires by itself. An agent
    always writes the key on its lease, so such a key was written by hand and is no live leader's.
    """

    holder: str
    version: int
    leased: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverKey:
    """The `failover` key. `leader` set means switchover; only `candidate` means failover."""

    leader: str | None = None
    candidate: str | None = None
    scheduled_at_wall: float | None = None  # operator's wall-clock time, compared to now_wall only
    version: int = 0

    @property
    def is_switchover(self) -> bool:
        return self.leader is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncKey:
    """The `sync` key. An absent leader means synchronous mode is not active."""

    leader: str | None = None
    standbys: frozenset[str] = frozenset()
    quorum: int = 0
    version: int | None = None  # None: the key does not exist

    def may_promote(self, name: str) -> bool:
        """Only the sync leader and sync standbys may promote while sync mode is active."""
        return self.leader is None or name == self.leader or name in self.standbys


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One line of `/history`: `timeline` ended at `switch_lsn`."""

    timeline: int
    switch_lsn: int
    new_leader: str | None = None


def sysid_valid(sysid: str | None) -> bool:
    """A value that can be a system identifier: at least 10 ASCII digits (Patroni's rule).

    initdb makes it from the time in seconds shifted left by 32 bits, so even 1 << 32 has 10
    digits. Only such a value can name another cluster; anything else in `initialize` is garbage.
    """
    return sysid is not None and len(sysid) >= 10 and sysid.isascii() and sysid.isdigit()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterView:
    """One consistent read of the cluster's keys."""

    initialize: str | None = None  # None: absent; "": bootstrap running; else sysid (or garbage)
    leader: LeaderKey | None = None
    members: tuple[Member, ...] = ()
    failover: FailoverKey | None = None
    sync: SyncKey = field(default_factory=SyncKey)
    history: tuple[HistoryEntry, ...] = ()
    status_optime_lsn: int | None = None
    failsafe: tuple[str, ...] | None = None  # member names listed in `/failsafe`
    config: DynamicConfig = field(default_factory=DynamicConfig)
    config_version: int | None = None  # None: the `/config` key does not exist
    failover_invalid_version: int | None = None  # a `/failover` that is no valid request

    @property
    def timeline(self) -> int:
        """Cluster timeline: the last history line's timeline + 1 (1 for an empty history)."""
        return self.history[-1].timeline + 1 if self.history else 1

    def member(self, name: str | None) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Standby:
    """One row of `pg_stat_replication` on a primary."""

    name: str
    sync_state: SyncState = SyncState.ASYNC
    flush_lsn: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncStandbyNames:
    """`synchronous_standby_names` as pgha writes it: FIRST/ANY `count` (names), or `*`."""

    count: int = 0
    names: frozenset[str] = frozenset()
    quorum: bool = False  # ANY instead of FIRST
    star: bool = False  # '*' (strict mode with no candidate: every commit waits)

    @property
    def empty(self) -> bool:
        return not self.star and not self.names


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresState:
    """The node's own PostgreSQL: from the server when up, from pg_controldata when down."""

    data_present: bool = True
    sysid: str | None = None
    run: PgRun = PgRun.STOPPED
    in_recovery: bool = True
    timeline: int | None = None
    wal_lsn: int = 0  # primary: write LSN; replica: max(received, replayed); stopped: end of WAL
    timeline_start_lsn: int = 0  # where the current timeline began (from its history file)
    clean_shutdown: bool = True  # False after a crash (pg_controldata: "in production")
    following: str | None = None  # primary_conninfo target
    ssn: SyncStandbyNames = field(default_factory=SyncStandbyNames)
    standbys: tuple[Standby, ...] = ()
    rewind_possible: bool = True  # pg_rewind installed and checksums or wal_log_hints on

    @property
    def is_primary(self) -> bool:
        """Running (or starting) and not in recovery: it can accept writes."""
        return self.run is not PgRun.STOPPED and not self.in_recovery


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerStatus:
    """One peer's `GET /patroni` answer during a race (2 s timeout, no retry)."""

    name: str
    reachable: bool = True
    running: bool = True  # False: its answer has no xlog (PostgreSQL down)
    in_recovery: bool = True
    wal_lsn: int = 0
    timeline: int | None = None
    failover_priority: int = 1
    nofailover: bool = False
    watchdog_failed: bool = False

    @property
    def counts(self) -> bool:
        """Only reachable peers with PostgreSQL up, eligible and with a working watchdog count."""
        return self.reachable and self.running and not self.nofailover and not self.watchdog_failed


@dataclass(frozen=True, slots=True, kw_only=True)
class FailsafeHeartbeat:
    """A `POST /failsafe` this replica accepted from a primary, at `received_mono`."""

    leader: str
    received_mono: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """Everything one step of the decision may read.

    `cluster` is None when the DCS read failed. `lock_result`, `peers`, `failsafe_acks` and
    `failure` are the results of the actions of the previous step (None when none was issued).
    """

    now_mono: float
    now_wall: float = 0.0  # only for operator-scheduled actions, never for lock expiry
    cluster: ClusterView | None = None
    postgres: PostgresState = field(default_factory=PostgresState)
    lock_result: LockResult | None = None
    peers: tuple[PeerStatus, ...] | None = None
    failsafe_acks: tuple[str, ...] | None = None  # names of members that answered 200
    failsafe_heartbeat: FailsafeHeartbeat | None = None
    failure: Failure | None = None
    watchdog_available: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalConfig:
    """Per-node settings that are not in the DCS (Patroni's local YAML)."""

    name: str
    tags: Tags = field(default_factory=Tags)
    api_url: str = ""
    conn_url: str = ""
    replica_method_without_leader: bool = False  # a create_replica_method with no_leader: true
    can_bootstrap: bool = True  # a bootstrap section exists
