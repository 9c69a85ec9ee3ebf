# Safety rule: the engine only *describes* what to do; a shell runs the actions in order and stops
# at the first one that fails (reporting it in the next observation). Actions that are only safe
# while the lock is held carry `not_after_mono`: a shell drops such an action when its own monotonic
# clock has passed that deadline, because the observation it was decided from is stale by then
# (docs/design.md, "The engine contract"). Actions form a closed set: do not subclass them.
"""Actions a decision asks the shell to run, as frozen values."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pgha.engine.values import HistoryEntry, MemberRole, SyncStandbyNames


class DemoteMode(enum.Enum):
    """Patroni's four demote modes (docs/patroni-rules.md §2.6)."""

    OFFLINE = "offline"  # DCS unreachable: fast stop, keep the lock (it expires), replica of nobody
    GRACEFUL = "graceful"  # switchover: checkpoint, fast stop, release the lock after the stop
    IMMEDIATE = "immediate"  # unsuitable (start timeout, crash): immediate stop, release the lock
    IMMEDIATE_NOLOCK = "immediate-nolock"  # lost the lock: immediate stop, the lock is not ours

    @property
    def releases_lock(self) -> bool:
        return self in (DemoteMode.GRACEFUL, DemoteMode.IMMEDIATE)


class Callback(enum.Enum):
    """User callbacks run by the shell (never through a shell interpreter)."""

    ON_START = "on_start"
    ON_STOP = "on_stop"
    ON_ROLE_CHANGE = "on_role_change"


@dataclass(frozen=True, slots=True, kw_only=True)
class AcquireInitialize:
    """Create the `initialize` key with an empty value if it is absent (the bootstrap race)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteInitialize:
    """Write `initialize = sysid` (after bootstrap, or to take over a standalone server)."""

    sysid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteInitialize:
    """Cancel a failed bootstrap so another node may try."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteConfig:
    """Write the dynamic configuration to `/config` if the key is absent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bootstrap:
    """Run initdb (or the bootstrap method) and start PostgreSQL as a primary."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateReplica:
    """Clone a replica with the configured methods from `source` (None: a method without leader)."""

    source: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AcquireLock:
    """Create the leader key on a lease of ttl, only if it is absent (atomic create)."""

    not_after_mono: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewLock:
    """Compare-and-set the leader key at `version`, refreshing its lease to ttl."""

    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseLock:
    """Delete the leader key if it is still at `version` (ours)."""

    version: int | None  # None: the version of our own key as last written


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireLeaderKey:
    """Delete a leader key without a lease if it is still at `version` (compare-and-set).

    Only for a key that nobody rewrote for ttl: a holder that renews changes the version and wins.
    """

    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Promote:
    """Run pre_promote, then promote PostgreSQL. Dropped once the lock deadline has passed."""

    not_after_mono: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Demote:
    """Stop PostgreSQL as `mode` says and leave it stopped, following nobody: the engine starts
    it again as a replica once the watchdog is disabled (the stop is its safepoint)."""

    mode: DemoteMode


@dataclass(frozen=True, slots=True, kw_only=True)
class StartPostgres:
    """Start PostgreSQL: as a primary in place (lock holder after a crash) or as a replica."""

    as_primary: bool
    not_after_mono: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPostgres:
    """Stop PostgreSQL and leave it stopped (fast, escalating to immediate; or immediate), running
    on_stop: the agent's own shutdown, never a step of the HA loop."""

    immediate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Follow:
    """Point primary_conninfo at `leader` (None: no upstream) and reload or restart."""

    leader: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rewind:
    """Stop PostgreSQL if running and pg_rewind it from `source`, then start as a replica."""

    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reinit:
    """Wipe the data directory and clone again from `source`."""

    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmWatchdog:
    """Open (or reconfigure) the watchdog with this timeout."""

    timeout_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class KickWatchdog:
    """Keepalive: only after a successful lock renewal (or an all-acked failsafe round)."""

    not_after_mono: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DisableWatchdog:
    """Magic close. Ordered after a Demote, it runs at the safepoint: no backend is left."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchPeerStatus:
    """GET /patroni of these members (2 s timeout, no retry); answers come in the next step."""

    members: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PostFailsafe:
    """POST /failsafe to these members; the names that answered 200 come in the next step."""

    members: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteFailsafe:
    """Write `/failsafe` = these members (the leader, on each successful renewal)."""

    members: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteSync:
    """Compare-and-set `/sync` at `version` (None: create)."""

    leader: str | None
    standbys: frozenset[str]
    quorum: int
    version: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetSyncStandbyNames:
    """Write `synchronous_standby_names` and reload PostgreSQL."""

    value: SyncStandbyNames


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteStatus:
    """Write `/status` with the primary's optime (the yardstick of maximum_lag_on_failover)."""

    optime_lsn: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendHistory:
    """Append a line to `/history` (after a promotion bumped the timeline)."""

    entry: HistoryEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearFailover:
    """Delete the `failover` key if it is still at `version`."""

    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCallback:
    """Run a user callback with the role the node now has (asynchronously, with a time limit)."""

    event: Callback
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateMember:
    """Publish `members/<me>` (role, state, timeline, WAL position, tags) with a ttl."""

    role: MemberRole


@dataclass(frozen=True, slots=True, kw_only=True)
class Halt:
    """Stop the agent: continuing would be unsafe (for example a foreign system identifier)."""


Action = (
    AcquireInitialize
    | WriteInitialize
    | DeleteInitialize
    | WriteConfig
    | Bootstrap
    | CreateReplica
    | AcquireLock
    | RenewLock
    | ReleaseLock
    | ExpireLeaderKey
    | Promote
    | Demote
    | StartPostgres
    | StopPostgres
    | Follow
    | Rewind
    | Reinit
    | ArmWatchdog
    | KickWatchdog
    | DisableWatchdog
    | FetchPeerStatus
    | PostFailsafe
    | WriteFailsafe
    | WriteSync
    | SetSyncStandbyNames
    | WriteStatus
    | AppendHistory
    | ClearFailover
    | RunCallback
    | UpdateMember
    | Halt
)
