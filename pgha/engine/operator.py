# Safety rule: an operator's request may only steer the lock to a node that is fit to hold it, and
# every world decides that the same way, from one fresh read of the cluster. A switchover names the
# current lock holder (a stale request cannot demote a newer leader); a named candidate is a running
# member, not the leader, allowed to fail over and, when the request names a leader in synchronous
# mode `on`, a `/sync` standby, so a request can never hand the lock to a node that may lack
# acknowledged commits; without a candidate some other member must qualify. One request at a
# time: a scheduled switchover must be cancelled first. In pause a switchover needs a candidate
# and cannot be scheduled; a schedule lies after the wall clock of the node that takes it. One
# ordered table decides, first match wins (Patroni's REST API, `is_failover_possible`).
"""Whether the cluster accepts an operator's switchover or failover: None, or why not."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from pgha.engine.config import SyncMode
from pgha.engine.values import ClusterView, FailoverKey, Member


class Refusal(enum.Enum):
    """Why a request was refused. Values are stable identifiers for histories."""

    PAUSED_NEEDS_CANDIDATE = "paused_needs_candidate"
    LEADER_MISMATCH = "leader_mismatch"
    CANDIDATE_NOT_MEMBER = "candidate_not_member"
    CANDIDATE_IS_LEADER = "candidate_is_leader"
    CANDIDATE_NOT_RUNNING = "candidate_not_running"
    CANDIDATE_NOFAILOVER = "candidate_nofailover"
    CANDIDATE_NOT_SYNC = "candidate_not_sync"
    NO_CANDIDATE = "no_candidate"
    ALREADY_SCHEDULED = "already_scheduled"
    PAUSED_NO_SCHEDULE = "paused_no_schedule"
    SCHEDULED_IN_PAST = "scheduled_in_past"


# The HTTP status the REST API answers each refusal with (the agent's and the simulator's).
STATUS: dict[Refusal, int] = {
    Refusal.PAUSED_NEEDS_CANDIDATE: 400,
    Refusal.LEADER_MISMATCH: 412,
    Refusal.CANDIDATE_NOT_MEMBER: 412,
    Refusal.CANDIDATE_IS_LEADER: 412,
    Refusal.CANDIDATE_NOT_RUNNING: 412,
    Refusal.CANDIDATE_NOFAILOVER: 412,
    Refusal.CANDIDATE_NOT_SYNC: 412,
    Refusal.NO_CANDIDATE: 412,
    Refusal.ALREADY_SCHEDULED: 409,
    Refusal.PAUSED_NO_SCHEDULE: 400,
    Refusal.SCHEDULED_IN_PAST: 422,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Ask:
    """One request against one read of the cluster, at the taking node's wall clock."""

    view: ClusterView
    request: FailoverKey  # the key it would write: `leader` set for a switchover
    now_wall: float


def _holder(view: ClusterView) -> str | None:
    return view.leader.holder if view.leader is not None else None


def _strict_sync(ask: Ask) -> bool:
    """A request naming a leader in synchronous mode `on` (active): only `/sync` standbys."""
    view = ask.view
    strict = view.config.synchronous_mode is SyncMode.ON and view.sync.leader is not None
    return strict and ask.request.leader is not None


def _eligible(ask: Ask, member: Member) -> bool:
    sync_ok = not _strict_sync(ask) or member.name in ask.view.sync.standbys
    return member.running and member.tags.can_failover and sync_ok


def _paused_without_candidate(ask: Ask) -> Refusal | None:
    paused = ask.view.config.pause and ask.request.candidate is None
    return Refusal.PAUSED_NEEDS_CANDIDATE if paused else None


def _leader_mismatch(ask: Ask) -> Refusal | None:
    leader = ask.request.leader
    mismatch = leader is not None and _holder(ask.view) != leader
    return Refusal.LEADER_MISMATCH if mismatch else None


def _member_refusal(ask: Ask, member: Member) -> Refusal | None:
    if _holder(ask.view) == member.name:
        return Refusal.CANDIDATE_IS_LEADER
    if not member.running:
        return Refusal.CANDIDATE_NOT_RUNNING
    if not member.tags.can_failover:
        return Refusal.CANDIDATE_NOFAILOVER
    if not _eligible(ask, member):
        return Refusal.CANDIDATE_NOT_SYNC
    return None


def _candidate_refusal(ask: Ask) -> Refusal | None:
    name = ask.request.candidate
    if name is None:
        holder = _holder(ask.view)
        others = (m for m in ask.view.members if m.name != holder)
        return None if any(_eligible(ask, m) for m in others) else Refusal.NO_CANDIDATE
    member = ask.view.member(name)
    return Refusal.CANDIDATE_NOT_MEMBER if member is None else _member_refusal(ask, member)


def _already_scheduled(ask: Ask) -> Refusal | None:
    key = ask.view.failover
    scheduled = key is not None and key.scheduled_at_wall is not None
    return Refusal.ALREADY_SCHEDULED if scheduled else None


def _schedule_refusal(ask: Ask) -> Refusal | None:
    at_wall = ask.request.scheduled_at_wall
    if at_wall is None:
        return None
    if ask.view.config.pause:
        return Refusal.PAUSED_NO_SCHEDULE
    return Refusal.SCHEDULED_IN_PAST if at_wall <= ask.now_wall else None


CHECKS: tuple[Callable[[Ask], Refusal | None], ...] = (
    _paused_without_candidate,
    _leader_mismatch,
    _candidate_refusal,
    _already_scheduled,
    _schedule_refusal,
)


def refusal(view: ClusterView, request: FailoverKey, *, now_wall: float) -> Refusal | None:
    """Why the cluster refuses `request` (the `/failover` key it would write), or None.

    `view` is one fresh read of the cluster; `now_wall` the wall clock of the node that takes the
    request (a schedule must lie after it). The first check of `CHECKS` that refuses decides.
    """
    ask = Ask(view=view, request=request, now_wall=now_wall)
    return next((r for r in (check(ask) for check in CHECKS) if r is not None), None)


# ---------------------------------------------------------------- reinitialize


class ReinitRefusal(enum.Enum):
    """Why `POST /reinitialize` was refused (Patroni's words: clients match them)."""

    IS_LEADER = "I am the leader, can not reinitialize"
    NO_LEADER = "cluster has no leader"


def reinit_source(
    view: ClusterView | None, *, holds_lock: bool, pg_is_primary: bool
) -> str | ReinitRefusal:
    """Where `POST /reinitialize` clones this node from (the leader), or why it may not: the
    leader (by its lock or its running primary) is never wiped, and without a leader there is
    no source to clone."""
    if holds_lock or pg_is_primary:
        return ReinitRefusal.IS_LEADER
    if view is None or view.leader is None:
        return ReinitRefusal.NO_LEADER
    return view.leader.holder
