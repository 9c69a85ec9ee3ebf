# Safety rule: "am I the leader" is a local deadline on the node's own monotonic clock, set only by
# a successful acquire or compare-and-set (deadline = when the request was *sent* + ttl, which is
# never later than the server's expiry) and cleared on any failure, demotion or foreign holder (bug
# zoo 2, docs/patroni-rules.md §2.0). It is never inferred from a DCS read (bug zoo 1).
"""The memory an agent carries from one decision to the next."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pgha.engine.config import DynamicConfig
from pgha.engine.roles import Role
from pgha.engine.values import LockResult, Member, PeerStatus


class Pending(enum.Enum):
    """What the previous step asked for whose result this step reads."""

    NONE = "none"
    INITIALIZE = "initialize"  # AcquireInitialize
    ACQUIRE = "acquire"  # AcquireLock
    RENEW = "renew"  # RenewLock
    PEERS = "peers"  # FetchPeerStatus
    FAILSAFE = "failsafe"  # PostFailsafe


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleMemo:
    """What one HA cycle (a run of immediate steps) has learned so far."""

    start_mono: float = 0.0
    renew: LockResult | None = None
    acquire: LockResult | None = None
    initialize: LockResult | None = None
    peers: tuple[PeerStatus, ...] | None = None
    failsafe_acks: tuple[str, ...] | None = None
    failsafe_sent_mono: float = 0.0  # when the POST /failsafe round that gave those acks went out


@dataclass(frozen=True, slots=True, kw_only=True)
class UnleasedLeader:
    """A leader key without a lease, at `version`, first seen at `since_mono` (my clock)."""

    version: int
    since_mono: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeState:
    """Everything the engine remembers about itself between steps."""

    name: str
    role: Role = Role.UNINITIALIZED
    lock_deadline_mono: float | None = None
    pending: Pending = Pending.NONE
    pending_sent_mono: float = 0.0
    continuing: bool = False  # the previous decision asked for an immediate next step
    memo: CycleMemo = field(default_factory=CycleMemo)
    config: DynamicConfig = field(default_factory=DynamicConfig)
    watchdog_timeout_s: float | None = None  # None: not armed
    former_leader: str | None = None
    old_members: tuple[Member, ...] = ()  # members of the last view that had a leader
    last_failsafe: tuple[str, ...] | None = None
    failsafe_active: bool = False
    start_began_mono: float | None = None  # first start attempt of this outage (reset when up)
    start_failed: bool = False  # the last start attempt failed and PostgreSQL is still down
    promote_backoff_until_mono: float | None = None  # after a failed pre_promote
    rewind_failed: bool = False
    sync_changed_mono: float | None = None  # when ssn was last changed (sync settling)
    sync_flush_lsn: int = 0  # primary flush LSN when ssn last changed
    quorum_hold_until_mono: float | None = None  # no quorum changes right after promotion
    unleased_leader: UnleasedLeader | None = None  # the leader key has no lease (since when)

    def holds_lock(self, now_mono: float) -> bool:
        """True while the local lock deadline has not passed."""
        return self.lock_deadline_mono is not None and now_mono < self.lock_deadline_mono
