# The ports are the only way the agent loop touches the world: the DCS, PostgreSQL, the watchdog,
# the peers' REST APIs, user callbacks and the clock. Each is a `typing.Protocol`; the real agent
# (pgha/agent), the simulator (sim/) and the in-memory test harness implement the same methods, so
# the loop and the executor are written once. Methods block until done and return plain values.
# Errors: a DCS call that fails within retry_timeout raises `DcsError`; a long action that fails
# raises `ActionFailed` carrying the engine's `Failure`. A compare-and-set that loses returns False.
"""Protocols for everything the agent loop reads or changes, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pgha.engine.actions import Callback, DemoteMode
from pgha.engine.values import (
    ClusterView,
    FailsafeHeartbeat,
    Failure,
    HistoryEntry,
    LockResult,
    MemberRole,
    PeerStatus,
    PostgresState,
    SyncStandbyNames,
)


class DcsError(Exception):
    """The DCS did not answer within retry_timeout (a connectivity problem, not a lost CAS)."""


class ActionFailed(Exception):
    """A PostgreSQL (or other long) action failed; `failure` is what the engine is told."""

    def __init__(self, failure: Failure | None = None, detail: str = "") -> None:
        super().__init__(detail or (failure.value if failure is not None else "action failed"))
        self.failure = failure


class Clock(Protocol):
    """The node's own clocks: monotonic for every deadline, wall only for operator schedules."""

    def now_mono(self) -> float: ...

    def now_wall(self) -> float: ...


class Dcs(Protocol):
    """The cluster's keys, as seen and written by one node (docs/patroni-rules.md §0)."""

    def read_cluster(self) -> ClusterView:
        """One consistent read of every key; raises DcsError."""
        ...

    def acquire_initialize(self) -> bool:
        """Create `initialize` = "" if absent; True if this node created it."""
        ...

    def write_initialize(self, sysid: str) -> None: ...

    def delete_initialize(self) -> None: ...

    def write_config(self) -> None:
        """Write the bootstrap dynamic configuration to `/config` if the key is absent."""
        ...

    def acquire_lock(self) -> LockResult:
        """Atomic create of the leader key on a lease of ttl: OK or CAS_FAILED."""
        ...

    def renew_lock(self, version: int) -> LockResult:
        """Compare-and-set the leader key at `version`, refreshing the lease: OK or CAS_FAILED."""
        ...

    def release_lock(self, version: int | None) -> None:
        """Delete the leader key if it is ours (at `version`, or as last written when None).

        Idempotent: a key that is gone or someone else's is left alone, without an error.
        """
        ...

    def expire_leader_key(self, version: int) -> bool:
        """Delete the leader key if it is still at `version`; False when the CAS lost."""
        ...

    def write_sync(
        self, leader: str | None, standbys: frozenset[str], quorum: int, version: int | None
    ) -> bool:
        """Compare-and-set `/sync` at `version` (None: create); False when the CAS lost."""
        ...

    def write_status(self, optime_lsn: int) -> None: ...

    def write_failsafe(self, members: tuple[str, ...]) -> None: ...

    def append_history(self, entry: HistoryEntry) -> None: ...

    def clear_failover(self, version: int) -> bool:
        """Delete `/failover` if still at `version`; False when the CAS lost."""
        ...

    def update_member(self, role: MemberRole) -> None:
        """Publish `members/<me>` (role, state, timeline, WAL position, tags) with a ttl."""
        ...


class Postgres(Protocol):
    """The node's own PostgreSQL. Long actions raise ActionFailed with the engine's Failure."""

    def state(self) -> PostgresState: ...

    def bootstrap(self) -> None: ...

    def create_replica(self, source: str | None) -> None: ...

    def start(self, as_primary: bool) -> None: ...

    def stop(self, immediate: bool) -> None:
        """Stop the server and leave it stopped (the agent's shutdown); runs on_stop."""
        ...

    def demote(self, mode: DemoteMode) -> None:
        """Stop as `mode` says and leave it stopped, following nobody."""
        ...

    def promote(self) -> None: ...

    def follow(self, leader: str | None) -> None: ...

    def rewind(self, source: str) -> None: ...

    def reinit(self, source: str) -> None: ...

    def set_sync_standby_names(self, value: SyncStandbyNames) -> None: ...


class Watchdog(Protocol):
    """The watchdog device (or its emulation): reset the machine unless kicked in time."""

    def available(self) -> bool: ...

    def arm(self, timeout_s: float) -> bool:
        """Open or reconfigure the device; False when it cannot be armed."""
        ...

    def kick(self) -> None: ...

    def disable(self) -> None: ...


class Peers(Protocol):
    """The other members' REST APIs, and the failsafe heartbeat this node's API accepted."""

    def fetch_status(self, names: tuple[str, ...]) -> tuple[PeerStatus, ...]:
        """GET /patroni of each (2 s timeout, no retry); unreachable ones say reachable=False."""
        ...

    def post_failsafe(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """POST /failsafe to each; the names that answered 200."""
        ...

    def last_failsafe_heartbeat(self) -> FailsafeHeartbeat | None: ...


class Callbacks(Protocol):
    """User callbacks (on_start, on_stop, on_role_change), run with a time limit."""

    def run(self, event: Callback, role: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything one agent talks to."""

    clock: Clock
    dcs: Dcs
    postgres: Postgres
    watchdog: Watchdog
    peers: Peers
    callbacks: Callbacks
