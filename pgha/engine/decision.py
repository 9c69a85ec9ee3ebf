# Safety rule: every decision says why, as data. Histories, checkers and plots match on `Reason`
# members, never on sentences (style anchors, lesson 6 and 12; Patroni's 49 string returns are the
# contrast). A decision either continues the current HA cycle at once (`immediate`: the next step
# reads the results of these actions) or ends it with a wake-up time.
"""The value a decision returns, and the closed set of reasons."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pgha.engine.actions import Action
from pgha.engine.state import NodeState


class Reason(enum.Enum):
    """Why a decision was taken. Values are stable identifiers for histories."""

    # DCS trouble and failsafe mode (docs/patroni-rules.md §2.1 row E, §2.10)
    DCS_UNREACHABLE = "dcs_unreachable"
    DCS_UNREACHABLE_DEMOTE = "dcs_unreachable_demote"
    FAILSAFE_CHECK = "failsafe_check"
    FAILSAFE_CONTINUE = "failsafe_continue"
    FAILSAFE_INCOMPLETE_DEMOTE = "failsafe_incomplete_demote"
    FAILSAFE_LEADER_CACHED = "failsafe_leader_cached"
    # identity and bootstrap (rows 6-9, 2.13)
    SYSID_MISMATCH = "sysid_mismatch"
    BOOTSTRAP_RACE = "bootstrap_race"
    BOOTSTRAP_WON = "bootstrap_won"
    BOOTSTRAP_FAILED = "bootstrap_failed"
    WAITING_FOR_BOOTSTRAP = "waiting_for_bootstrap"
    CLONE = "clone"
    CLONE_FAILED = "clone_failed"
    TAKE_OVER_STANDALONE = "take_over_standalone"
    START_PRIMARY_FIRST = "start_primary_first"
    RELEASE_LOCK_NO_DATA = "release_lock_no_data"
    UNLEASED_LEADER_EXPIRED = "unleased_leader_expired"  # a hand-written leader key, unchanged ttl
    # pause (feature 7)
    PAUSED = "paused"
    PAUSED_LEADER = "paused_leader"
    PAUSED_RELEASE_LOCK = "paused_release_lock"
    PAUSED_TAKE_LOCK = "paused_take_lock"
    # the lock holder (§2.2, §2.5, §2.7)
    RENEW_LOCK = "renew_lock"
    LOCK_CAS_FAILED = "lock_cas_failed"
    LOCK_CAS_FAILED_DEMOTE = "lock_cas_failed_demote"
    LEADER = "leader"
    PROMOTE = "promote"
    PROMOTE_FAILED = "promote_failed"
    WATCHDOG_UNAVAILABLE = "watchdog_unavailable"
    WATCHDOG_FAILED_DEMOTE = "watchdog_failed_demote"
    PRIMARY_RESTART_IN_PLACE = "primary_restart_in_place"
    PRIMARY_STARTING = "primary_starting"
    START_TIMEOUT_DEMOTE = "start_timeout_demote"
    START_FAILED_RELEASE = "start_failed_release"
    CRASH_FAILOVER_DEMOTE = "crash_failover_demote"
    SWITCHOVER_SCHEDULED = "switchover_scheduled"
    SWITCHOVER_STALE = "switchover_stale"
    SWITCHOVER_INVALID = "switchover_invalid"
    SWITCHOVER_CHECK = "switchover_check"
    SWITCHOVER_DEMOTE = "switchover_demote"
    SWITCHOVER_IMPOSSIBLE = "switchover_impossible"
    # everyone else (§2.2, §2.3, §2.11)
    NOT_LOCK_HOLDER_DEMOTE = "not_lock_holder_demote"
    FOLLOW_LEADER = "follow_leader"
    START_REPLICA = "start_replica"
    REWIND = "rewind"
    REINIT = "reinit"
    NEEDS_MANUAL_REINIT = "needs_manual_reinit"
    PROBE_PEERS = "probe_peers"
    RACE = "race"
    LOST_RACE = "lost_race"
    NOT_HEALTHIEST_DEMOTE = "not_healthiest_demote"
    # why a node is not the healthiest (§2.4)
    NOT_HEALTHIEST_BACKOFF = "not_healthiest_backoff"
    NOT_HEALTHIEST_STALE_PRIMARY = "not_healthiest_stale_primary"
    NOT_HEALTHIEST_NOFAILOVER = "not_healthiest_nofailover"
    NOT_HEALTHIEST_NOT_SYNC = "not_healthiest_not_sync"
    NOT_HEALTHIEST_WATCHDOG = "not_healthiest_watchdog"
    NOT_HEALTHIEST_NOT_IN_FAILSAFE = "not_healthiest_not_in_failsafe"
    NOT_HEALTHIEST_LAG = "not_healthiest_lag"
    NOT_HEALTHIEST_TIMELINE = "not_healthiest_timeline"
    NOT_HEALTHIEST_PRIMARY_ALIVE = "not_healthiest_primary_alive"
    NOT_HEALTHIEST_PEER_AHEAD = "not_healthiest_peer_ahead"
    NOT_HEALTHIEST_PRIORITY = "not_healthiest_priority"
    NOT_HEALTHIEST_QUORUM = "not_healthiest_quorum"
    NOT_HEALTHIEST_WAIT_CANDIDATE = "not_healthiest_wait_candidate"
    NOT_HEALTHIEST_FORMER_LEADER = "not_healthiest_former_leader"
    NOT_HEALTHIEST_PAUSED = "not_healthiest_paused"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to do now, what to remember, when to look again, and why.

    Attributes:
        next_state: the state to pass to the next decision.
        actions: run in order; stop at the first failure.
        wake_at_mono: when to observe again (monotonic clock of this node).
        immediate: the next step continues this cycle and reads these actions' results.
        wake_on_watch: a change of the leader key may wake the node before wake_at_mono.
        reason: why.
        reread_dcs: the next observation reads the DCS again; False: the shell reuses the view
            of this step (a failsafe round must not spend another retry_timeout on a DCS that
            just failed, or the watchdog would fire before the kick).
    """

    next_state: NodeState
    actions: tuple[Action, ...]
    wake_at_mono: float
    immediate: bool
    wake_on_watch: bool
    reason: Reason
    reread_dcs: bool = True
